"""Text in, text out: load a model by name or path, render the prompt, generate, detokenize.

The glue between the tokenizer/chat template and the inference engine (`llm.infer`), used
by `llm generate`. Float and quantized checkpoints load the same way.
"""

from __future__ import annotations

from typing import Callable

from llm.chat_template import ChatTemplate, render_chat
from llm.checkpoint import Checkpoint, load_checkpoint, load_config
from llm.hub import resolve_model
from llm.infer.engine import Engine
from llm.infer.quantized_checkpoint import is_quantized_checkpoint, load_quantized
from llm.infer.sampling import SamplingParams

__all__ = ["load_model", "generate_text", "stop_ids", "make_engine"]


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
    top_k: int = 0,
    min_p: float = 0.0,
    repetition_penalty: float = 1.0,
    stop: list[str] | None = None,
) -> str:
    ck = model if isinstance(model, Checkpoint) else load_model(model, dtype=dtype)
    engine = make_engine(ck, dtype)
    params = SamplingParams(
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        min_p=min_p,
        repetition_penalty=repetition_penalty,
        max_tokens=max_tokens,
        stop=stop or [],
        seed=seed,
    )
    ids = prompt_ids(ck, prompt, chat, system)
    if on_text is None:
        return engine.generate(ids, params)[0].text or ""
    pieces = []
    for event in engine.stream(ids, params):
        if event.text:
            on_text(event.text)
            pieces.append(event.text)
    return "".join(pieces)
