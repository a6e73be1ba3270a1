"""Text in, text out: load a model by name or path, render the prompt, generate, detokenize.

The glue between the tokenizer/chat template and the inference loop, used by `llm generate`.
"""

from __future__ import annotations

from typing import Callable

from llm.chat_template import ChatTemplate, render_chat
from llm.checkpoint import Checkpoint, load_checkpoint
from llm.hub import resolve_model
from llm.infer.generate import generate
from llm.tokenizer import IncrementalDecoder

__all__ = ["load_model", "generate_text", "stop_ids"]


def load_model(name_or_path: str, dtype: str | None = None, device: str = "cpu") -> Checkpoint:
    return load_checkpoint(resolve_model(name_or_path), device=device, dtype=dtype)


def stop_ids(ck: Checkpoint) -> list[int]:
    """Ids that end a reply: the config's eos token and <|endoftext|>, when the vocabulary has them."""
    names = {ck.config.eos_token, "<|endoftext|>"}
    return [ck.tokenizer.special_tokens[n] for n in names if n in ck.tokenizer.special_tokens]


def generate_text(
    model: str | Checkpoint,
    prompt: str | None = None,
    chat: str | None = None,
    system: str | None = None,
    max_tokens: int = 128,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int | None = None,
    dtype: str | None = None,
    on_text: Callable[[str], None] | None = None,
) -> str:
    ck = model if isinstance(model, Checkpoint) else load_model(model, dtype=dtype)
    tok = ck.tokenizer
    if chat is not None:
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": chat}]
        template = ChatTemplate(ck.config.chat_template, ck.config.default_system)
        ids, _ = render_chat(tok, messages, add_generation_prompt=True, template=template)
    else:
        ids = tok.encode(prompt or "")
    decoder = IncrementalDecoder(tok)
    on_token = (lambda t: on_text(decoder.push(t))) if on_text else None
    out = generate(
        ck.model, ids, max_tokens, temperature=temperature, top_p=top_p, seed=seed,
        stop_ids=stop_ids(ck), on_token=on_token,
    )
    if on_text:
        on_text(decoder.flush())
    return tok.decode(out)
