"""The Hugging Face transformers reference for `llm bench decode --vs-transformers`.

Loads the same weights from the GGUF file (`from_pretrained(dir, gguf_file=...)`, which
dequantizes to float32) and times greedy `generate()` on the same prompt ids. transformers
is an optional (dev) dependency, imported only here and only when asked for.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import torch

from llm.errors import InferenceError

__all__ = ["transformers_decode"]


@torch.inference_mode()
def transformers_decode(gguf: Path, prompt: list[int], new_tokens: int, repeats: int, threads: int) -> dict[str, Any]:
    """Median prefill and decode tok/s of transformers' greedy generate() on `prompt`."""
    try:
        import transformers
        from transformers import AutoModelForCausalLM
    except ImportError as exc:
        raise InferenceError("--vs-transformers needs transformers: pip install 'iclaw-llm[dev]'") from exc
    torch.set_num_threads(threads)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, torch_dtype=torch.float32)
    model.eval()
    ids = torch.tensor([prompt])
    attention = torch.ones_like(ids)

    def run(n: int) -> float:
        t0 = time.perf_counter()
        out = model.generate(
            ids, attention_mask=attention, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0
        )
        assert out.shape[1] == ids.shape[1] + n
        return time.perf_counter() - t0

    run(4)  # warm up
    prefill, decode = [], []
    for _ in range(repeats):
        first = run(1)  # prefill plus one token
        total = run(new_tokens)
        prefill.append(len(prompt) / first)
        decode.append((new_tokens - 1) / max(1e-9, total - first))
    return {
        "prefill_tok_s": statistics.median(prefill),
        "decode_tok_s": statistics.median(decode),
        "version": transformers.__version__,
    }
