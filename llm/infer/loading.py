"""From a name or path to a ready engine: load a checkpoint, build its engine, its prompt ids.

`load_model` takes a checkpoint path or a pulled name (`llm.hub`); float and quantized
checkpoints load the same way. `make_engine` wraps a loaded checkpoint in an `Engine` with
the ids that end a reply (`stop_ids`); `prompt_ids` turns raw text, or one chat message
rendered with the model's template, into the ids to generate from. Used by `llm generate`,
the benchmarks and `llm serve`. Knows nothing about sampling or HTTP.
"""

from __future__ import annotations

from llm.chat_template import ChatTemplate, render_chat
from llm.checkpoint import Checkpoint, load_checkpoint, load_config
from llm.hub import resolve_model
from llm.infer.engine import Engine
from llm.infer.quantized_checkpoint import is_quantized_checkpoint, load_quantized

__all__ = ["load_model", "make_engine", "stop_ids", "prompt_ids"]


def load_model(name_or_path: str, dtype: str | None = None, device: str = "cpu") -> Checkpoint:
    """A checkpoint by path or pulled name; quantized checkpoints come back with quantized modules."""
    path = resolve_model(name_or_path)
    load_config(path)  # validates the directory first (missing or half-written files)
    if is_quantized_checkpoint(path):
        return load_quantized(path)
    return load_checkpoint(path, device=device, dtype=dtype)


def stop_ids(ck: Checkpoint) -> list[int]:
    """Ids that end a reply: the config's eos token and <|endoftext|>, when the vocabulary has them."""
    names = {ck.config.eos_token, "<|endoftext|>"}
    return [ck.tokenizer.special_tokens[n] for n in names if n in ck.tokenizer.special_tokens]


def make_engine(ck: Checkpoint, dtype: str | None = None, threads: int | None = None) -> Engine:
    """An engine over a loaded checkpoint, with its tokenizer and end-of-reply ids."""
    dtype = dtype or ("bfloat16" if ck.config.dtype == "bfloat16" else "float32")
    return Engine(ck.model, ck.tokenizer, dtype=dtype, end_ids=stop_ids(ck), threads=threads)


def prompt_ids(ck: Checkpoint, prompt: str | None = None, chat: str | None = None, system: str | None = None) -> list[int]:
    """Token ids of raw text, or of one chat message rendered with the model's template."""
    if chat is None:
        return ck.tokenizer.encode(prompt or "")
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": chat}]
    template = ChatTemplate(ck.config.chat_template, ck.config.default_system)
    ids, _ = render_chat(ck.tokenizer, messages, add_generation_prompt=True, template=template)
    return ids
