"""`llm quantize`, `llm eval ppl` and `llm bench decode|quant|context` run on a tiny model and print valid JSON.

No timing is asserted; only that the commands work and report sane, consistent fields.
"""

import json

import pytest

from llm.cli import main


def run_json(capsys, argv):
    main(argv)
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_bench_decode_json(capsys, nano_checkpoint):
    out = run_json(capsys, ["bench", "decode", str(nano_checkpoint), "--tokens", "6", "--context", "8", "--repeats", "1", "--json"])
    assert out["new_tokens"] == 6 and out["prompt_tokens"] == 8
    assert out["decode_tok_s"] > 0 and out["prefill_tok_s"] > 0 and out["peak_rss_mb"] > 0
    assert out["weights"].startswith("fp32")
    # Prefill efficiency: GFLOP/s from the model's FLOPs and the measured rate, against a peak measured in the run.
    peak = out["matmul_peak_now_gflops"]
    assert out["prefill_gflops"] > 0 and peak["float32"] > 0 and peak["bfloat16"] > 0
    assert out["prefill_share_of_fp32_peak_now"] == pytest.approx(out["prefill_gflops"] / peak["float32"], rel=0.05)


def test_bench_decode_bf16_prefill_is_timed_beside_float32(capsys, nano_checkpoint):
    out = run_json(
        capsys,
        ["bench", "decode", str(nano_checkpoint), "--tokens", "6", "--context", "40", "--repeats", "1",
         "--prefill-dtype", "bfloat16", "--json"],
    )
    assert out["prefill_dtype"] == "bfloat16" and out["float32_prefill_tok_s"] > 0 and out["prefill_speedup_vs_float32"] > 0
    assert 0 < out["last_logits_max_rel_diff"] < 0.05  # the bf16 GEMMs ran (not exact) and stayed close
    done, total = map(int, out["greedy_tokens_equal_to_float32_prefill"].split("/"))
    assert total == 6 and 0 <= done <= 6


def test_prefill_flops_count_the_matmuls_the_causal_attention_and_one_head_row(nano_checkpoint):
    from llm.checkpoint import load_checkpoint
    from llm.infer.inference_model import InferenceModel

    model = InferenceModel.from_gpt(load_checkpoint(nano_checkpoint).model)
    cfg = model.config
    D, F, H, K, E = cfg.d_model, cfg.ffn_hidden, cfg.n_heads, cfg.kv_heads, cfg.head_dim
    per_token = cfg.n_layers * D * ((H + 2 * K) * E + H * E + 3 * F)  # fused QKV, output, gate+up, down
    T = 10
    want = 2 * per_token * T + 2 * cfg.n_layers * H * E * T * (T + 1) + 2 * cfg.vocab_size * D
    assert model.prefill_flops(T) == want


def test_bench_decode_speculative_and_quantized_json(capsys, nano_checkpoint):
    out = run_json(
        capsys,
        ["bench", "decode", str(nano_checkpoint), "--quant", "4", "--draft", str(nano_checkpoint), "--tokens", "8",
         "--context", "8", "--repeats", "1", "--json"],
    )
    assert out["weights"].startswith("int4/g64")
    assert 0 <= out["alpha"] <= 1 and out["speedup"] > 0 and out["predicted_speedup"] > 0
    out = run_json(capsys, ["bench", "decode", str(nano_checkpoint), "--prompt-lookup", "--tokens", "8", "--repeats", "1", "--json"])
    assert out["drafter"] == "prompt-lookup"


def test_bench_quant_json(capsys, nano_checkpoint, tmp_path):
    data = tmp_path / "t.txt"
    data.write_text("Some text to score, with a few words in it. " * 8)
    out = run_json(capsys, ["bench", "quant", str(nano_checkpoint), "--data", str(data), "--tokens", "4", "--json"])
    assert [r["variant"] for r in out["rows"]] == ["fp32", "bf16", "int8", "int4/g64"]
    sizes = [r["size_mb"] for r in out["rows"]]
    assert sizes[0] > sizes[1] > sizes[2] > sizes[3]
    assert all(r["bits_per_byte"] > 0 for r in out["rows"])


def test_bench_context_json(capsys, nano_checkpoint):
    out = run_json(capsys, ["bench", "context", str(nano_checkpoint), "--contexts", "8,64", "--tokens", "4", "--no-cache-tokens", "2", "--json"])
    assert [r["context"] for r in out["rows"]] == [8, 64]
    assert all(r["cached_tok_s"] > 0 and r["no_cache_tok_s"] > 0 for r in out["rows"])


def test_quantize_and_eval_ppl(capsys, nano_checkpoint, tmp_path):
    main(["quantize", str(nano_checkpoint), "--bits", "8", "--out", str(tmp_path / "q8")])
    assert (tmp_path / "q8" / "model.safetensors").exists()
    capsys.readouterr()
    data = tmp_path / "t.txt"
    data.write_text("hello world, " * 20)
    out = run_json(capsys, ["eval", "ppl", str(tmp_path / "q8"), "--data", str(data), "--json"])
    assert out["tokens"] > 0 and out["bits_per_byte"] > 0 and out["perplexity"] > 1


@pytest.mark.parametrize(
    "argv, message",
    [
        (["quantize", "{ck}", "--bits", "3", "--out", "{tmp}/x"], "valid: 8, 4"),
        (["quantize", "{ck}", "--bits", "4", "--group-size", "100", "--out", "{tmp}/x"], "valid: 32, 64, 128"),
        (["bench", "decode", "{ck}", "--context", "9999", "--json"], "maximum context is 256"),
        (["bench", "decode", "{ck}", "--draft", "{ck}", "--prompt-lookup"], "choose one drafter"),
        (["eval", "ppl", "{ck}", "--data", "{tmp}/missing.txt"], "no such text file"),
        (["bench", "decode", "{ck}", "--dtype", "fp8"], "valid: float32, bfloat16"),
    ],
)
def test_bad_input_is_one_line_error(argv, message, nano_checkpoint, tmp_path, capsys):
    argv = [a.format(ck=nano_checkpoint, tmp=tmp_path) for a in argv]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
