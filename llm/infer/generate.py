"""Text in, text out: `generate_text` loads a model (or takes a loaded one), renders the prompt,
generates with the engine and returns the detokenized reply, streaming it to `on_text` if given.

What `llm generate` runs; library users get the same in one call. Loading and prompt ids come
from `llm.infer.loading`, the decoding from `llm.infer.engine`.
"""

from __future__ import annotations

from typing import Any, Callable

from llm.checkpoint import Checkpoint
from llm.infer.loading import load_model, make_engine, prompt_ids
from llm.infer.sampling import SamplingParams

__all__ = ["generate_text"]


def generate_text(
    model: str | Checkpoint,
    prompt: str | None = None,
    chat: str | None = None,
    system: str | None = None,
    dtype: str | None = None,
    on_text: Callable[[str], None] | None = None,
    **sampling: Any,
) -> str:
    """The reply to raw text `prompt` or to one `chat` message (with an optional `system` prompt).

    `sampling` holds fields of `SamplingParams` (max_tokens, temperature, top_p, top_k, min_p,
    repetition_penalty, stop, seed); one given as None keeps its default.
    """
    ck = model if isinstance(model, Checkpoint) else load_model(model, dtype=dtype)
    engine = make_engine(ck, dtype)
    params = SamplingParams(**{k: v for k, v in sampling.items() if v is not None})
    ids = prompt_ids(ck, prompt, chat, system)
    if on_text is None:
        return engine.generate(ids, params)[0].text or ""
    pieces = []
    for event in engine.stream(ids, params):
        if event.text:
            on_text(event.text)
            pieces.append(event.text)
    return "".join(pieces)
