"""llama.cpp as the peer for `llm bench decode --vs-llamacpp GGUF`.

Times greedy decoding of the same prompt ids with llama-cpp-python (the `bench` extra) on a
GGUF file, with the same number of threads, so our decode tok/s can be put beside the CPU
runtime people compare against. The package is optional and imported only here, when asked for.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from llm.errors import InferenceError

__all__ = ["check_llamacpp", "llamacpp_decode"]


def check_llamacpp(gguf: Path) -> Any:
    """The llama_cpp module, after checking that it is installed and `gguf` is a GGUF file (one-line errors)."""
    try:
        import llama_cpp
    except ImportError as exc:
        raise InferenceError("--vs-llamacpp needs llama-cpp-python: pip install 'iclaw-llm[bench]'") from exc
    if not (gguf.suffix == ".gguf" and gguf.is_file()):
        raise InferenceError(f"--vs-llamacpp {gguf}: not an existing .gguf file")
    return llama_cpp


def llamacpp_decode(gguf: Path, prompt: list[int], new_tokens: int, repeats: int, threads: int) -> dict[str, Any]:
    """Median prefill and decode tok/s of llama.cpp's greedy generation of `new_tokens` after `prompt`."""
    llama_cpp = check_llamacpp(gguf)
    llm = llama_cpp.Llama(
        model_path=str(gguf), n_ctx=len(prompt) + new_tokens + 8, n_batch=512, n_threads=threads,
        n_threads_batch=threads, verbose=False,
    )
    if llm.n_vocab() < max(prompt) + 1:
        raise InferenceError(f"{gguf.name} has {llm.n_vocab()} tokens; it is not the benchmarked model's GGUF")

    def run() -> dict[str, float]:
        llm.reset()  # NOTE: generate() would otherwise reuse the cached prompt and skip the prefill
        t0 = time.perf_counter()
        stamps = []
        for _ in llm.generate(prompt, top_k=1, temp=0.0, repeat_penalty=1.0, reset=False):
            stamps.append(time.perf_counter())
            if len(stamps) == new_tokens:
                break
        return {"prefill_tok_s": len(prompt) / (stamps[0] - t0), "decode_tok_s": (len(stamps) - 1) / (stamps[-1] - stamps[0])}

    run()  # warm up
    runs = [run() for _ in range(repeats)]
    return {
        "prefill_tok_s": statistics.median(r["prefill_tok_s"] for r in runs),
        "decode_tok_s": statistics.median(r["decode_tok_s"] for r in runs),
        "version": getattr(llama_cpp, "__version__", "?"),
    }
