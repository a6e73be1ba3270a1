"""`llm bench decode|quant|context`: measure the engine on this machine, honestly.

`bench decode` also reports the prompt's prefill in GFLOP/s (`InferenceModel.prefill_flops`)
and its share of the matmul peak, measured in the same run (same load) and as cached by
`llm bench matmul` when it has run here.

Every function returns one plain dict (what `--json` prints) with the settings, the
numbers and the load average, so a table can be reproduced and a shared machine's noise
judged. Timings are the median of `repeats` runs (the best is reported too). Comparisons
(ours vs Hugging Face transformers, speculative vs plain) run back to back in the same
process on the same prompt, so their ratio is fair even when the absolute numbers are not.

Prompts are built from `llm/infer/data/sample.txt` (plain English); for prompt lookup the
model is asked to repeat a paragraph of it (copy-heavy, like agent traffic quoting files).
With `guided`, a chat asking for a tool call (three tools) is decoded greedily twice in one
loop, plain and with the grammar of tool-call blocks masking the logits (end-of-reply ids
masked too, so both runs make exactly `tokens` tokens: call after call); the ratio and the
grammar's milliseconds per token are its cost.
"""

from __future__ import annotations

import os
import resource
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import torch

from llm.chat_template import ChatTemplate, parse_tool_calls, render_chat
from llm.checkpoint import Checkpoint
from llm.errors import InferenceError
from llm.infer import kernels
from llm.infer.drafters import ModelDrafter, PromptLookupDrafter
from llm.infer.engine import Engine, decode_step, default_threads, prefill
from llm.infer.guidance import Guidance, Guide, reply_grammar, tool_arguments_schema
from llm.infer.inference_model import DTYPES, InferenceModel
from llm.infer.loading import load_model, make_engine, prompt_ids
from llm.infer.perplexity import evaluate_perplexity
from llm.infer.quantize import QuantConfig, quantize_model
from llm.infer.sampling import SamplingParams, constrain
from llm.infer.speculative import SpeculativeDecoder
from llm.matmul_peak import load_matmul_peak, measure_matmul_peak

__all__ = ["bench_decode", "bench_context", "bench_quant", "SAMPLE_TEXT", "text_prompt", "copy_prompt"]

SAMPLE_TEXT = Path(__file__).parent / "data" / "sample.txt"

GUIDED_TOOLS = [
    {
        "name": "read_file",
        "description": "Read a text file.",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
    },
    {
        "name": "calculator",
        "description": "Evaluate an arithmetic expression.",
        "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]},
    },
    {
        "name": "search",
        "description": "Search files for a pattern.",
        "parameters": {
            "type": "object",
            "properties": {"pattern": {"type": "string"}, "max_results": {"type": "integer", "minimum": 1, "maximum": 50}},
            "required": ["pattern"],
        },
    },
]
GUIDED_QUESTION = "What is 17*23? Then read notes.txt and search it for TODO."


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _env(threads: int) -> dict[str, Any]:
    return {"threads": threads, "kernels": kernels.kernel_status(), "load_avg_1m": round(os.getloadavg()[0], 2)}


def text_prompt(ck: Checkpoint, n_tokens: int, source: str | Path | None = None) -> list[int]:
    """Exactly n tokens of a text file (default: the English sample), repeated as needed."""
    path = Path(source) if source else SAMPLE_TEXT
    if not path.is_file():
        raise InferenceError(f"{path}: no such prompt file")
    ids = ck.tokenizer.encode(path.read_text(errors="replace"))
    if not ids:
        raise InferenceError(f"{path}: the prompt file is empty")
    while len(ids) < n_tokens:
        ids = ids + ids
    return ids[:n_tokens]


def copy_prompt(ck: Checkpoint) -> list[int]:
    """A copy-heavy prompt: a paragraph the model is asked to repeat (chat template when the model has one).

    Base models get the paragraph twice and the start of a third copy to continue. At most half
    the model's context.
    """
    para = SAMPLE_TEXT.read_text().split("\n\n")[2]
    if "<|im_start|>" in ck.tokenizer.special_tokens:
        ids = prompt_ids(ck, chat=f"Copy the following paragraph word for word:\n\n{para}")
    else:
        ids = ck.tokenizer.encode(f"{para}\n\n{para}\n\n{para[:80]}")
    return ids[-(ck.config.max_seq_len // 2) :]


def load_variant(model: str, quant: int | None = None, group_size: int | None = None) -> Checkpoint:
    """A checkpoint, quantized in memory when `quant` is 8 or 4."""
    ck = load_model(model)
    if quant is not None:
        quantize_model(ck.model, QuantConfig(bits=quant, group_size=group_size))
    return ck


def _timed_stream(engine: Engine, prompt: list[int], n_new: int, decoder: Any = None) -> dict[str, float]:
    """Greedy generation of exactly n_new tokens: prefill and decode throughput from event timestamps."""
    params = SamplingParams(max_tokens=n_new, ignore_eos=True)
    t0 = time.perf_counter()
    stamps = [time.perf_counter() for ev in engine.stream(prompt, params, decoder) if ev.token is not None]
    if len(stamps) < 2:
        raise InferenceError("the benchmark needs at least 2 new tokens")
    decode_s = stamps[-1] - stamps[0]
    return {
        "prefill_tok_s": len(prompt) / (stamps[0] - t0),
        "decode_tok_s": (len(stamps) - 1) / decode_s,
        "tokens": len(stamps),
    }


def _median_runs(run: Callable[[], dict[str, float]], repeats: int, key: str = "decode_tok_s") -> dict[str, float]:
    runs = [run() for _ in range(repeats)]
    out = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    out[f"best_{key}"] = max(r[key] for r in runs)
    return out


def bench_decode(
    model: str,
    quant: int | None = None,
    group_size: int | None = None,
    dtype: str = "float32",
    draft: str | None = None,
    prompt_lookup: bool = False,
    gamma: int = 4,
    adaptive: bool = False,
    tokens: int = 128,
    context: int = 64,
    repeats: int = 3,
    threads: int | None = None,
    vs_transformers: bool = False,
    gguf: str | None = None,
    prompt_file: str | None = None,
    guided: bool = False,
    prefill_dtype: str = "float32",
    vs_llamacpp: str | None = None,
) -> dict[str, Any]:
    """Prefill and decode tok/s, prefill GFLOP/s, peak RSS; with a drafter also alpha and speedup;
    optionally vs transformers; optionally the cost of guided (grammar-masked) decoding; with a
    bfloat16 prefill, float32 prefill of the same prompt beside it; optionally vs llama.cpp on a GGUF."""
    if draft and prompt_lookup:
        raise InferenceError("choose one drafter: --draft MODEL or --prompt-lookup")
    if vs_llamacpp:
        from llm.infer.llamacpp_reference import check_llamacpp

        check_llamacpp(Path(vs_llamacpp))  # before the long runs: a missing package is a one-line error
    threads = threads or default_threads()
    ck = load_variant(model, quant, group_size)
    engine = make_engine(ck, dtype, threads)
    if prefill_dtype not in DTYPES:
        raise InferenceError(f"unsupported prefill dtype {prefill_dtype!r}; valid: {', '.join(DTYPES)}")
    engine.model.prefill_dtype = DTYPES[prefill_dtype]
    speculative = bool(draft or prompt_lookup)
    prompt = copy_prompt(ck) if prompt_lookup and not prompt_file else text_prompt(ck, context, prompt_file)
    engine.check_prompt(prompt)
    engine.generate(prompt[:16], SamplingParams(max_tokens=4, ignore_eos=True))  # warm up (and build kernels)
    out: dict[str, Any] = {
        "model": str(model),
        "weights": _describe(engine.model, quant, group_size, dtype),
        "weight_mb": round(engine.model.weight_bytes / 1e6, 1),
        "prompt": prompt_file or ("copy a paragraph" if prompt_lookup else "sample.txt"),
        "prompt_tokens": len(prompt),
        "prefill_dtype": prefill_dtype,
        "new_tokens": tokens,
        **_env(threads),
    }
    base = _median_runs(lambda: _timed_stream(engine, prompt, tokens), repeats)
    out.update({k: round(v, 2) for k, v in base.items() if k != "tokens"})
    out.update(_prefill_efficiency(engine.model, len(prompt), base["prefill_tok_s"], threads))
    if prefill_dtype != "float32":
        out.update(_float32_prefill_beside(engine, prompt, tokens, repeats, base["prefill_tok_s"]))
    if speculative:
        drafter = PromptLookupDrafter() if prompt_lookup else _model_drafter(draft, ck)
        decoders: list[SpeculativeDecoder] = []

        def spec_run() -> dict[str, float]:
            decoders.append(SpeculativeDecoder(drafter, gamma=gamma, adaptive=adaptive))
            return _timed_stream(engine, prompt, tokens, decoders[-1])

        spec = _median_runs(spec_run, repeats)
        stats = decoders[len(decoders) // 2].stats
        # Leviathan's formula prices a verification pass like one decoding step; measured, it
        # costs `verify_cost` steps (more rows through the head and attention), so also report
        # the formula with that cost in the denominator.
        verify_cost = stats.target_seconds / max(1, stats.rounds) * base["decode_tok_s"]
        alpha, g, c = stats.alpha, stats.mean_gamma, stats.cost_ratio
        with_verify = (1 - min(alpha, 0.999) ** (g + 1)) / ((1 - min(alpha, 0.999)) * (g * c + verify_cost))
        out.update(
            {
                "drafter": drafter.name if prompt_lookup else f"model {draft}",
                "gamma": gamma,
                "adaptive": adaptive,
                "spec_decode_tok_s": round(spec["decode_tok_s"], 2),
                "speedup": round(spec["decode_tok_s"] / base["decode_tok_s"], 2),
                **{k: round(v, 3) for k, v in stats.as_dict().items()},
                "verify_cost": round(verify_cost, 3),
                "predicted_speedup_with_verify_cost": round(with_verify, 3),
            }
        )
    if guided:
        out.update(_guided_cost(engine, ck, tokens, repeats))
    out["peak_rss_mb"] = round(_peak_rss_mb(), 1)
    if vs_transformers:
        from llm.infer.hf_reference import transformers_decode

        hf = transformers_decode(_gguf_for(ck, gguf), prompt, tokens, repeats, threads)
        # Ours again right after, so the ratio compares like with like on a shared machine.
        again = _median_runs(lambda: _timed_stream(engine, prompt, tokens), repeats)
        out.update(
            {
                "transformers_decode_tok_s": round(hf["decode_tok_s"], 2),
                "transformers_prefill_tok_s": round(hf["prefill_tok_s"], 2),
                "ours_decode_tok_s_same_run": round(again["decode_tok_s"], 2),
                "ratio_vs_transformers": round(again["decode_tok_s"] / hf["decode_tok_s"], 2),
                "transformers_version": hf["version"],
            }
        )
    if vs_llamacpp:
        out.update(_llamacpp_beside(engine, Path(vs_llamacpp), prompt, tokens, repeats, threads))
    return out


def _llamacpp_beside(engine: Engine, gguf: Path, prompt: list[int], tokens: int, repeats: int, threads: int) -> dict[str, Any]:
    """llama.cpp's greedy decode of the same prompt ids and threads, then ours again right after (same load)."""
    from llm.infer.llamacpp_reference import llamacpp_decode

    peer = llamacpp_decode(gguf, prompt, tokens, repeats, threads)
    again = _median_runs(lambda: _timed_stream(engine, prompt, tokens), repeats)
    return {
        "llamacpp_gguf": gguf.name,
        "llamacpp_decode_tok_s": round(peer["decode_tok_s"], 2),
        "llamacpp_prefill_tok_s": round(peer["prefill_tok_s"], 2),
        "ours_decode_tok_s_beside_llamacpp": round(again["decode_tok_s"], 2),
        "ratio_vs_llamacpp": round(again["decode_tok_s"] / peer["decode_tok_s"], 2),
        "llamacpp_version": peer["version"],
    }


def _prefill_efficiency(model: InferenceModel, n_tokens: int, tok_s: float, threads: int) -> dict[str, Any]:
    """Prefill GFLOP/s and its share of the matmul peak, measured now (same load) and as `llm bench matmul` cached it."""
    gflops = model.prefill_flops(n_tokens) / n_tokens * tok_s / 1e9
    now = measure_matmul_peak(sizes=(1024,), repeats=3, seconds=0.2, threads=threads)
    cached = load_matmul_peak("bf16")
    return {
        "prefill_gflops": round(gflops, 3),
        "matmul_peak_now_gflops": {k: round(v, 1) for k, v in now.items()},
        "prefill_share_of_bf16_peak_now": round(gflops / now["bfloat16"], 3),
        "prefill_share_of_fp32_peak_now": round(gflops / now["float32"], 3),
        "bench_matmul_bf16_gflops": round(cached / 1e9, 1) if cached else None,
        "prefill_share_of_bench_matmul_bf16": round(gflops * 1e9 / cached, 3) if cached else None,
    }


@torch.inference_mode()
def _float32_prefill_beside(engine: Engine, prompt: list[int], tokens: int, repeats: int, tok_s: float) -> dict[str, Any]:
    """The same prompt read with float32 prefill right after: speed ratio, last-position logits, greedy tokens."""
    model, chosen = engine.model, engine.model.prefill_dtype
    greedy = SamplingParams(max_tokens=tokens, ignore_eos=True)
    results = {}
    for dt in (chosen, torch.float32):
        model.prefill_dtype = dt
        logits = prefill(model, engine.new_cache(1, len(prompt) + 1), [prompt])[0]  # (V,)
        results[dt] = (logits, engine.generate(prompt, greedy)[0].tokens)
    exact = _median_runs(lambda: _timed_stream(engine, prompt, tokens), repeats)["prefill_tok_s"]
    model.prefill_dtype = chosen
    (fast_logits, fast_ids), (ref_logits, ref_ids) = results[chosen], results[torch.float32]
    agree = next((i for i, (a, b) in enumerate(zip(fast_ids, ref_ids)) if a != b), min(len(fast_ids), len(ref_ids)))
    return {
        "float32_prefill_tok_s": round(exact, 2),
        "prefill_speedup_vs_float32": round(tok_s / exact, 2),
        "last_logits_max_rel_diff": round(float((fast_logits - ref_logits).abs().max() / ref_logits.abs().max()), 5),
        "same_next_token": int(fast_logits.argmax()) == int(ref_logits.argmax()),
        "greedy_tokens_equal_to_float32_prefill": f"{agree}/{len(ref_ids)}",
    }


def _guided_cost(engine: Engine, ck: Checkpoint, tokens: int, repeats: int) -> dict[str, Any]:
    """Greedy decode tok/s without and with the tool-call grammar's mask, in the same loop, interleaved."""
    tools = [{"type": "function", "function": f} for f in GUIDED_TOOLS]
    template = ChatTemplate(ck.config.chat_template, ck.config.default_system)
    prompt, _ = render_chat(ck.tokenizer, [{"role": "user", "content": GUIDED_QUESTION}], tools, True, template)
    engine.check_prompt(prompt + [0] * tokens)
    guidance = Guidance(ck.tokenizer, engine.end_ids)
    grammar = reply_grammar({f["name"]: tool_arguments_schema(f["parameters"]) for f in GUIDED_TOOLS}, "some")
    texts: list[str] = []

    def pair() -> dict[str, float]:
        plain = _masked_run(engine, prompt, tokens, None)
        guide = guidance.compile(grammar)
        masked = _masked_run(engine, prompt, tokens, guide)
        texts.append(ck.tokenizer.decode(masked["ids"]))
        return {"plain": plain["decode_tok_s"], "guided": masked["decode_tok_s"], "mask_ms": masked["mask_ms"]}

    runs = _median_runs(pair, repeats, key="guided")
    return {
        "guided_prompt_tokens": len(prompt),
        "plain_loop_decode_tok_s": round(runs["plain"], 2),
        "guided_decode_tok_s": round(runs["guided"], 2),
        "guided_vs_plain": round(runs["guided"] / runs["plain"], 3),
        "grammar_ms_per_token": round(runs["mask_ms"], 3),
        "guided_calls_parsed": len(parse_tool_calls(texts[-1])[1]),
    }


@torch.inference_mode()
def _masked_run(engine: Engine, prompt: list[int], n_new: int, guide: Guide | None) -> dict[str, Any]:
    """Exactly n_new greedy tokens; with a guide, each step's logits masked to what it allows, minus
    the end-of-reply ids (so the grammar's "one or more calls" keeps going)."""
    cache = engine.new_cache(1, len(prompt) + n_new)
    logits = prefill(engine.model, cache, [prompt])[0]  # (V,)
    ends = torch.tensor(sorted(engine.end_ids), dtype=torch.long)
    ids, stamps, grammar_s = [], [], 0.0
    for pos in range(len(prompt), len(prompt) + n_new):
        if guide is not None:
            t0 = time.perf_counter()
            allowed = guide.allowed()
            allowed[ends[ends < allowed.shape[0]]] = False
            token = int(constrain(logits, allowed).argmax())
            guide.accept(token)
            grammar_s += time.perf_counter() - t0
        else:
            token = int(logits.argmax())
        ids.append(token)
        stamps.append(time.perf_counter())
        logits = decode_step(engine.model, cache, torch.tensor([token]), torch.tensor([pos]))[0]
    if guide is not None and guide.error:
        raise InferenceError(f"guided decoding failed in the benchmark: {guide.error}")
    return {"decode_tok_s": (n_new - 1) / (stamps[-1] - stamps[0]), "mask_ms": grammar_s / n_new * 1e3, "ids": ids}


def _describe(model: InferenceModel, quant: int | None, group_size: int | None, dtype: str) -> str:
    kinds = model.kinds()
    main = max(kinds, key=kinds.get)
    rest = [k for k in kinds if k != main]
    label = main if not quant else QuantConfig(quant, group_size).describe()
    return label + (f" (+{', '.join(rest)})" if rest else "") + (f", {dtype} activations" if dtype != "float32" else "")


def _model_drafter(draft: str, target: Checkpoint) -> ModelDrafter:
    dck = load_model(draft)
    if dck.config.vocab_size != target.config.vocab_size:
        raise InferenceError(
            f"the draft model has {dck.config.vocab_size} vocabulary entries and the target {target.config.vocab_size}; "
            "speculative decoding needs the same tokenizer"
        )
    return ModelDrafter(InferenceModel.from_gpt(dck.model), dck.tokenizer)


def _gguf_for(ck: Checkpoint, gguf: str | None) -> Path:
    """The GGUF file the transformers reference loads: --gguf, else the one this checkpoint was imported from."""
    path = Path(gguf) if gguf else Path(str(ck.meta.get("source", "")))
    if not (path.suffix == ".gguf" and path.is_file()):
        raise InferenceError(
            "--vs-transformers loads the same weights from a GGUF file; pass --gguf FILE "
            f"(this checkpoint's source {ck.meta.get('source')!r} is not an existing .gguf)"
        )
    return path


@torch.inference_mode()
def bench_context(
    model: str,
    contexts: tuple[int, ...] = (32, 256, 1024),
    tokens: int = 32,
    no_cache_tokens: int = 4,
    dtype: str = "float32",
    threads: int | None = None,
) -> dict[str, Any]:
    """Decode tok/s at several context lengths, with the KV cache and with full recomputation."""
    threads = threads or default_threads()
    ck = load_model(model)
    engine = make_engine(ck, dtype, threads)
    rows = []
    for c in contexts:
        prompt = text_prompt(ck, c)
        engine.check_prompt(prompt)
        cached = _timed_stream(engine, prompt, tokens)["decode_tok_s"]
        rows.append({"context": c, "cached_tok_s": round(cached, 2), "no_cache_tok_s": round(_no_cache(engine.model, prompt, no_cache_tokens), 2)})
    for r in rows:
        r["cached_vs_first"] = round(r["cached_tok_s"] / rows[0]["cached_tok_s"], 2)
    return {"model": str(model), "new_tokens": tokens, "rows": rows, **_env(threads)}


def _no_cache(model: InferenceModel, prompt: list[int], n: int) -> float:
    """tok/s when every step recomputes the whole sequence (no KV cache)."""
    ids = list(prompt)
    t0 = time.perf_counter()
    for _ in range(n):
        seq = torch.tensor([ids])
        ids.append(int(model(seq, torch.arange(seq.shape[1]), last_only=True)[0, -1].argmax()))
    return n / (time.perf_counter() - t0)


def bench_quant(
    model: str,
    data: str | None = None,
    tokens: int = 64,
    context: int = 64,
    group_size: int = 64,
    threads: int | None = None,
    on_variant: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """fp32 / bf16 / int8 / int4: checkpoint size, bits-per-byte on `data`, decode tok/s."""
    threads = threads or default_threads()
    text = Path(data).read_text() if data else SAMPLE_TEXT.read_text()
    variants = [("fp32", None, "float32"), ("bf16", None, "bfloat16"), ("int8", 8, "float32"), (f"int4/g{group_size}", 4, "float32")]
    rows = []
    for name, bits, dtype in variants:
        if on_variant is not None:
            on_variant(name)
        ck = load_variant(model, bits, group_size if bits == 4 else None)
        engine = make_engine(ck, dtype, threads)
        ppl = evaluate_perplexity(engine.model, ck.tokenizer, text)
        prompt = text_prompt(ck, context)
        engine.generate(prompt[:16], SamplingParams(max_tokens=4, ignore_eos=True))
        speed = _timed_stream(engine, prompt, tokens)
        rows.append(
            {
                "variant": name,
                "size_mb": round(_checkpoint_bytes(ck, dtype) / 1e6, 1),
                "bits_per_byte": round(ppl.bits_per_byte, 4),
                "perplexity": round(ppl.perplexity, 3),
                "decode_tok_s": round(speed["decode_tok_s"], 2),
            }
        )
    for r in rows:
        r["bpb_vs_fp32"] = round(r["bits_per_byte"] / rows[0]["bits_per_byte"] - 1, 4)
        r["speed_vs_fp32"] = round(r["decode_tok_s"] / rows[0]["decode_tok_s"], 2)
    return {"model": str(model), "data": data or str(SAMPLE_TEXT), "rows": rows, **_env(threads)}


def _checkpoint_bytes(ck: Checkpoint, dtype: str) -> int:
    """Bytes of tensors the checkpoint would hold (float tensors at `dtype`; a tied head counted once)."""
    seen, total = set(), 0
    for t in ck.model.state_dict().values():
        if t.data_ptr() in seen:
            continue
        seen.add(t.data_ptr())
        size = 2 if (t.is_floating_point() and dtype == "bfloat16") else t.element_size()
        total += t.numel() * size
    return total
