"""GPT-2 byte-level BPE vocabularies (as in GGUF metadata and HF tokenizer.json) → our Tokenizer.

GPT-2 stores each token as printable unicode: byte b maps to a visible character (spaces
become 'Ġ', newlines 'Ċ', ...). We map back to raw bytes and use the token id as the
tiktoken rank, which is valid when the vocabulary is ordered by merge priority (checked).
"""

from __future__ import annotations

from llm.errors import UnsupportedModel
from llm.tokenizer import Tokenizer

__all__ = ["bytes_to_unicode", "tokenizer_from_bytelevel", "LLAMA_BPE_DIGITS_PATTERN", "GPT2_PATTERN"]

# GPT-2's split regex with digits taken one at a time (SmolLM2, StarCoder family).
LLAMA_BPE_DIGITS_PATTERN = (
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
)
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte → printable character table."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    table = {b: chr(b) for b in printable}
    n = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + n)
            n += 1
    return table


def tokenizer_from_bytelevel(
    tokens: list[str],
    special_ids: set[int],
    merges: list[str] | None,
    pattern: str,
    name: str,
    source: str,
) -> Tokenizer:
    """Build a Tokenizer from id-ordered token strings; `special_ids` are control tokens."""
    decoder = {c: b for b, c in bytes_to_unicode().items()}
    ranks: dict[bytes, int] = {}
    special: dict[str, int] = {}
    for i, tok in enumerate(tokens):
        if i in special_ids:
            special[tok] = i
            continue
        try:
            ranks[bytes(decoder[c] for c in tok)] = i
        except KeyError as exc:
            raise UnsupportedModel(f"{source}: token {i} ({tok!r}) is not GPT-2 byte-level BPE") from exc
    # NOTE: some vocabularies lack a few single bytes (SmolLM2 lacks 21, e.g. 0x04 and 0xF5-0xFF);
    # the Tokenizer drops those bytes when encoding, as Hugging Face tokenizers does.
    if merges:
        # Ranks double as merge priorities in tiktoken: the merged token's id must grow with merge order.
        prev = -1
        for rank, merge in enumerate(merges):
            a, _, b = merge.partition(" ")
            merged = bytes(decoder[c] for c in a + b)
            tid = ranks.get(merged)
            if tid is None:
                continue
            if tid < prev:
                raise UnsupportedModel(
                    f"{source}: vocabulary ids are not in merge order (merge {rank}: {merge!r}); cannot convert"
                )
            prev = tid
    return Tokenizer(pattern=pattern, mergeable_ranks=ranks, special_tokens=special, name=name)
