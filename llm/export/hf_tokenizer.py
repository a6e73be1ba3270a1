"""Our tiktoken-style tokenizer as Hugging Face `tokenizers` files: tokenizer.json + tokenizer_config.json.

A `Tokenizer` is a split regex, byte sequences with ranks, and special tokens. The HF form
of the same thing is a byte-level BPE: the regex as a `Split` pre-tokenizer, then
`ByteLevel` (bytes → GPT-2's printable characters, no regex of its own), a vocabulary of
printable strings and the merge list. tiktoken has no merge list, only ranks, so each
merge is recovered the usual way: run BPE on a token's bytes with only the ranks below
its own; what is left is the pair it was made from. `ignore_merges` is on because
tiktoken takes a whole pre-token straight from the vocabulary when it is one token.

Special tokens are `added_tokens` (split off before BPE, always one id) and also sit in the
vocabulary under their own text. This module knows tokenizers and the chat template string;
it knows nothing about weights.
"""

from __future__ import annotations

from typing import Any

from llm.config import ModelConfig
from llm.errors import TokenizerError
from llm.export.hf_chat_template import chatml_jinja
from llm.importers.bytelevel import bytes_to_unicode
from llm.tokenizer import Tokenizer

__all__ = ["hf_tokenizer_json", "hf_tokenizer_config", "merges_from_ranks", "special_ids"]

# The token a document starts after (our data pipeline's document separator, GPT-2's bos).
BOS_TOKEN = "<|endoftext|>"


def merges_from_ranks(ranks: dict[bytes, int]) -> list[tuple[bytes, bytes]]:
    """The pair each multi-byte token was merged from, in rank order (= merge priority).

    A token that BPE cannot build from lower-ranked tokens gets no merge (tiktoken can still
    emit it for a pre-token that is exactly that token, as can HF with `ignore_merges`).
    """
    merges = []
    for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        if len(token) < 2:
            continue
        pair = _last_merge(token, rank, ranks)
        if pair is not None:
            merges.append(pair)
    return merges


def _last_merge(token: bytes, rank: int, ranks: dict[bytes, int]) -> tuple[bytes, bytes] | None:
    parts = [token[i : i + 1] for i in range(len(token))]
    if any(p not in ranks for p in parts):
        return None
    while len(parts) > 2:
        best_rank, best_i = rank, -1
        for i in range(len(parts) - 1):
            r = ranks.get(parts[i] + parts[i + 1])
            if r is not None and r < best_rank:
                best_rank, best_i = r, i
        if best_i < 0:
            return None
        parts[best_i : best_i + 2] = [parts[best_i] + parts[best_i + 1]]
    return (parts[0], parts[1]) if len(parts) == 2 else None


def special_ids(tok: Tokenizer, config: ModelConfig) -> dict[str, int | list[int] | None]:
    """bos/eos ids for config.json and the end-of-reply ids (`llm generate`'s stop ids) for generation."""
    specials = tok.special_tokens
    eos = specials.get(config.eos_token)
    stops = [specials[t] for t in dict.fromkeys([config.eos_token, BOS_TOKEN]) if t in specials]
    return {"bos": specials.get(BOS_TOKEN), "eos": eos, "stops": stops}


def hf_tokenizer_json(tok: Tokenizer) -> dict[str, Any]:
    """The `tokenizers` library's serialized form of `tok` (a byte-level BPE)."""
    printable = bytes_to_unicode()

    def text(b: bytes) -> str:
        return "".join(printable[x] for x in b)

    vocab = {text(b): rank for b, rank in sorted(tok.mergeable_ranks.items(), key=lambda kv: kv[1])}
    clash = sorted(t for t in tok.special_tokens if t in vocab)
    if clash:
        raise TokenizerError(f"special token(s) {', '.join(clash)} read the same as an ordinary token; HF cannot hold both")
    # NOTE: specials go in the vocabulary too: `tokenizers` gives an added token that is not
    # in it the next free id, ignoring the id written in `added_tokens`.
    vocab.update(tok.special_tokens)
    merges = [f"{text(a)} {text(b)}" for a, b in merges_from_ranks(tok.mergeable_ranks)]
    added = [
        {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
        for t, i in sorted(tok.special_tokens.items(), key=lambda kv: kv[1])
    ]
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": tok.pattern}, "behavior": "Isolated", "invert": False},
                byte_level,
            ],
        },
        "post_processor": {**byte_level, "trim_offsets": False},
        "decoder": byte_level,
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": True,
            "vocab": vocab,
            "merges": merges,
        },
    }


def hf_tokenizer_config(tok: Tokenizer, config: ModelConfig) -> dict[str, Any]:
    """tokenizer_config.json: special tokens, no automatic bos/eos, and the ChatML chat template."""
    ids = special_ids(tok, config)
    decoder = {
        str(i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False, "special": True}
        for t, i in sorted(tok.special_tokens.items(), key=lambda kv: kv[1])
    }
    return {
        "add_bos_token": False,
        "add_eos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": decoder,
        "bos_token": BOS_TOKEN if ids["bos"] is not None else None,
        "eos_token": config.eos_token if ids["eos"] is not None else None,
        "pad_token": None,
        "unk_token": None,
        "chat_template": chatml_jinja(config.default_system),
        "clean_up_tokenization_spaces": False,
        "model_max_length": config.max_seq_len,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }

