"""Text in, text out: `generate_text` loads a model (or takes a loaded one), renders the prompt,
generates with the engine and returns the detokenized reply, streaming it to `on_text` if given.

What `llm generate` runs; library users get the same in one call. Loading and prompt ids come
from `llm.infer.loading`, the decoding from `llm.infer.engine`.
"""

from __future__ import annotations

from typing import Callable

from llm.checkpoint import Checkpoint
from llm.infer.loading import load_model, make_engine, prompt_ids
from llm.infer.sampling import SamplingParams

__all__ = ["generate_text"]


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
    """The reply to raw text `prompt` or to one `chat` message (with an optional `system` prompt)."""
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
