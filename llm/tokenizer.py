"""Byte-level BPE tokenizer: trained with `rustbpe`, run with `tiktoken`, stored as `tokenizer.json`.

A `Tokenizer` is a split regex, a table of mergeable byte sequences with their ranks and a
few special tokens. The same class serves our own trained tokenizers and ones imported
from other models (the GGUF/HF importers build the ranks and hand them in). The file
format is the `tokenizer.json` of a checkpoint directory:

    {"name": ..., "pattern": ..., "ranks_b64": {base64(token bytes): rank}, "special": {text: id}}

`IncrementalDecoder` turns a stream of ids into text without ever emitting half a UTF-8
character. This module knows nothing about chat formats (see `llm.chat_template`) or models.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import rustbpe
import tiktoken

from llm.atomic import atomic_write_text
from llm.errors import TokenizerError

__all__ = ["SPECIAL_TOKENS", "GPT4_SPLIT_PATTERN", "TOKENIZER_FILE", "Tokenizer", "IncrementalDecoder"]

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# GPT-4's (cl100k) split regex, except that numbers split into runs of at most two digits
# instead of three: with the small vocabularies we train, three-digit number tokens take
# ~1000 vocabulary slots for little gain.
GPT4_SPLIT_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,2}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""
)

TOKENIZER_FILE = "tokenizer.json"


class Tokenizer:
    """Encode text to ids and back; special tokens are only recognised when asked for."""

    def __init__(
        self,
        pattern: str,
        mergeable_ranks: dict[bytes, int],
        special_tokens: dict[str, int],
        name: str = "bpe",
    ) -> None:
        _check_ids(mergeable_ranks, special_tokens)
        self.name = name
        self.pattern = pattern
        self.mergeable_ranks = mergeable_ranks
        self.special_tokens = special_tokens
        self.vocab_size = 1 + max([*mergeable_ranks.values(), *special_tokens.values()])
        # NOTE: some imported vocabularies lack a few single bytes (SmolLM2 lacks 21, such as 0x04 and
        # 0xF5-0xFF). tiktoken needs every byte, so each missing one gets a "phantom" rank past the
        # vocabulary; no merge contains it, so it always stands alone and `encode` drops it, which
        # is what Hugging Face tokenizers does with a byte it has no token for.
        missing = [bytes([b]) for b in range(256) if bytes([b]) not in mergeable_ranks]
        self._phantom = set(range(self.vocab_size, self.vocab_size + len(missing)))
        ranks = {**mergeable_ranks, **dict(zip(missing, sorted(self._phantom)))}
        try:
            self._enc = tiktoken.Encoding(name, pat_str=pattern, mergeable_ranks=ranks, special_tokens=special_tokens)
        except ValueError as exc:
            raise TokenizerError(f"tokenizer {name!r} has an invalid split pattern: {exc}") from exc

    def __repr__(self) -> str:
        return f"Tokenizer(name={self.name!r}, vocab_size={self.vocab_size}, special={sorted(self.special_tokens)})"

    def encode(self, text: str) -> list[int]:
        """Ordinary text: a special-token string such as "<|im_end|>" is encoded as plain characters."""
        return self._drop_phantom(self._enc.encode_ordinary(text))

    def encode_with_special(self, text: str) -> list[int]:
        """Like `encode`, but special-token strings become their single ids."""
        return self._drop_phantom(self._enc.encode(text, allowed_special="all"))

    def _drop_phantom(self, ids: list[int]) -> list[int]:
        if not self._phantom:
            return ids
        return [i for i in ids if i not in self._phantom]

    def decode(self, ids: list[int]) -> str:
        """Text of `ids`; bytes that are not valid UTF-8 become U+FFFD."""
        # Python's decoder rather than tiktoken's so the replacement rule is exactly the one
        # `IncrementalDecoder` uses: streamed text then always concatenates to `decode(ids)`.
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def decode_bytes(self, ids: list[int]) -> bytes:
        try:
            return self._enc.decode_bytes(ids)
        except KeyError as exc:
            bad = [i for i in ids if not self._is_known(i)]
            raise TokenizerError(self._unknown_id_message(bad[0] if bad else exc.args[0])) from exc

    def id_to_bytes(self, i: int) -> bytes:
        try:
            return self._enc.decode_single_token_bytes(i)
        except KeyError as exc:
            raise TokenizerError(self._unknown_id_message(i)) from exc

    def token_id(self, special: str) -> int:
        """Id of a special token, e.g. `token_id("<|im_end|>")`."""
        try:
            return self.special_tokens[special]
        except KeyError:
            known = ", ".join(sorted(self.special_tokens)) or "none"
            raise TokenizerError(
                f"tokenizer {self.name!r} has no special token {special!r}; known special tokens: {known}"
            ) from None

    def _is_known(self, i: int) -> bool:
        try:
            self._enc.decode_single_token_bytes(i)
        except KeyError:
            return False
        return True

    def _unknown_id_message(self, i: object) -> str:
        return f"token id {i} is not in tokenizer {self.name!r} (vocab_size {self.vocab_size})"

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int, pattern: str = GPT4_SPLIT_PATTERN) -> Tokenizer:
        """Learn BPE merges from `texts` so that, with `SPECIAL_TOKENS` appended, there are `vocab_size` ids.

        Ids 0-255 are the single bytes, then the merges in the order they were learned, then the
        special tokens. A corpus too small to supply enough merges gives a smaller vocabulary.
        """
        min_size = 256 + len(SPECIAL_TOKENS)
        if vocab_size < min_size:
            raise TokenizerError(
                f"vocab size {vocab_size} is too small: a byte-level BPE needs at least {min_size} "
                f"(256 bytes + {len(SPECIAL_TOKENS)} special tokens)"
            )
        counter = _CharCounter(texts)
        trainer = rustbpe.Tokenizer()
        try:
            trainer.train_from_iterator(counter, vocab_size - len(SPECIAL_TOKENS), pattern=pattern)
        except ValueError as exc:
            raise TokenizerError(f"cannot train with split pattern {pattern!r}: {exc}") from exc
        except TypeError as exc:
            raise TokenizerError(f"training texts must be strings: {exc}") from exc
        if counter.chars == 0:
            raise TokenizerError("no text to train the tokenizer on: the input is empty")
        ranks = dict(trainer.get_mergeable_ranks())
        special = {tok: len(ranks) + i for i, tok in enumerate(SPECIAL_TOKENS)}
        return cls(pattern, ranks, special)

    def save(self, directory: Path) -> None:
        """Write `directory/tokenizer.json` atomically (a temp file renamed over the old one)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        doc = {
            "name": self.name,
            "pattern": self.pattern,
            "ranks_b64": {base64.b64encode(tok).decode("ascii"): rank for tok, rank in self.mergeable_ranks.items()},
            "special": self.special_tokens,
        }
        atomic_write_text(directory / TOKENIZER_FILE, json.dumps(doc, ensure_ascii=False))

    @classmethod
    def load(cls, path: Path) -> Tokenizer:
        """Load from a checkpoint directory or a `tokenizer.json` file."""
        path = Path(path)
        if not path.exists() and path.suffix != ".json":
            raise TokenizerError(
                f"no tokenizer at {path}: give a checkpoint directory holding {TOKENIZER_FILE} or the file itself"
            )
        file = path / TOKENIZER_FILE if path.is_dir() else path
        try:
            text = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise TokenizerError(f"tokenizer file {file} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise TokenizerError(f"cannot read tokenizer file {file}: {exc}") from exc
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TokenizerError(f"tokenizer file {file} is not valid JSON ({exc}); re-save or re-import it") from exc
        try:
            return cls._from_doc(doc)
        except TokenizerError as exc:
            raise TokenizerError(f"tokenizer file {file} is corrupt: {exc}") from exc

    @classmethod
    def _from_doc(cls, doc: object) -> Tokenizer:
        if not isinstance(doc, dict):
            raise TokenizerError("expected a JSON object")
        missing = [k for k in ("pattern", "ranks_b64", "special") if k not in doc]
        if missing:
            raise TokenizerError(f"missing key(s) {', '.join(missing)}")
        pattern, ranks_b64, special = doc["pattern"], doc["ranks_b64"], doc["special"]
        name = doc.get("name", "bpe")
        if not isinstance(pattern, str) or not isinstance(name, str):
            raise TokenizerError('"pattern" and "name" must be strings')
        if not isinstance(ranks_b64, dict) or not ranks_b64:
            raise TokenizerError('"ranks_b64" must be a non-empty object {base64 bytes: rank}')
        if not isinstance(special, dict) or not all(_is_id(v) for v in special.values()):
            raise TokenizerError('"special" must be an object {token text: id}')
        ranks: dict[bytes, int] = {}
        for key, rank in ranks_b64.items():
            try:
                tok = base64.b64decode(key, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise TokenizerError(f"ranks_b64 key {key!r} is not valid base64") from exc
            if not _is_id(rank):
                raise TokenizerError(f"rank of {key!r} must be a non-negative integer, got {rank!r}")
            ranks[tok] = rank
        return cls(pattern, ranks, special, name=name)


class IncrementalDecoder:
    """Streams text from ids one at a time; a character split across tokens is held back until complete."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self._tok = tokenizer
        # Python's incremental UTF-8 decoder keeps an incomplete trailing sequence buffered and
        # replaces bytes that can never become valid, the same way `Tokenizer.decode` does.
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, token_id: int) -> str:
        """Text completed by this token (possibly "")."""
        return self._utf8.decode(self._tok.id_to_bytes(token_id), final=False)

    def flush(self) -> str:
        """Whatever is still buffered; an unfinished character becomes U+FFFD. The decoder can be reused."""
        text = self._utf8.decode(b"", final=True)
        self._utf8.reset()
        return text


class _CharCounter(Iterator[str]):
    """Passes texts through to the trainer while counting characters, to detect an empty corpus."""

    def __init__(self, texts: Iterable[str]) -> None:
        self._it = iter(texts)
        self.chars = 0

    def __next__(self) -> str:
        text = next(self._it)
        if isinstance(text, str):
            self.chars += len(text)
        return text


def _is_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_ids(ranks: dict[bytes, int], special: dict[str, int]) -> None:
    """Ids must be unique across ranks and specials; tiktoken would silently mis-decode otherwise."""
    if not ranks:
        raise TokenizerError("a tokenizer needs at least one mergeable token")
    rank_ids = set(ranks.values())
    if len(rank_ids) != len(ranks):
        raise TokenizerError("two mergeable tokens share the same rank")
    clash = sorted(t for t, i in special.items() if i in rank_ids)
    if clash:
        raise TokenizerError(f"special token(s) {', '.join(clash)} reuse the id of an ordinary token")
    if len(set(special.values())) != len(special):
        raise TokenizerError("two special tokens share the same id")
