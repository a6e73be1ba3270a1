"""`llm bench sft`: the real SFT step on synthetic tool-use chats, each configuration in its own process."""

import json

import pytest
import torch
from posttrain_kit import write_jsonl

from llm.chat_template import ChatTemplate, parse_tool_calls, render_chat
from llm.checkpoint import load_checkpoint, load_config
from llm.cli import main
from llm.errors import ConfigError, DataError
from llm.train.bench_rows import BENCH_TOOLS, bench_examples, synthetic_chat_rows
from llm.train.bench_sft import SFTBenchSpec
from llm.train.sft_step_rates import sft_step_flops
from llm.train.bench_trl import _require
from llm.train.flops import flops_per_token, measure_matmul_peak, save_matmul_peak

RUN_FIELDS = ("supervised_tok_per_s", "tok_per_s", "mfu", "peak_rss_mb", "load_avg_1m", "step_s", "model_flops")


def test_synthetic_rows_render_tool_calls_with_the_shared_renderer(chat_ckpt):
    tok = load_checkpoint(chat_ckpt).tokenizer
    rows = synthetic_chat_rows(40, seed=3)
    assert rows == synthetic_chat_rows(40, seed=3)  # the TRL process rebuilds exactly these rows
    assert all(r["tools"] == BENCH_TOOLS for r in rows)
    called = 0
    for row in rows:
        ids, mask = render_chat(tok, row["messages"], row["tools"])
        supervised = tok.decode([t for t, m in zip(ids, mask) if m])
        _, calls = parse_tool_calls(supervised)
        expected = [c["function"]["name"] for m in row["messages"] if m["role"] == "assistant"
                    for c in m.get("tool_calls") or []]
        assert [c.name for c in calls] == expected  # the loss covers exactly the assistant's tool calls
        called += bool(calls)
    assert 0 < called < len(rows)  # tool calls and plain chats both
    examples = bench_examples(tok, ChatTemplate(), 512, min_tokens=20_000)
    assert sum(len(e.ids) for e in examples) >= 20_000 and max(len(e.ids) for e in examples) <= 512
    with pytest.raises(DataError, match="--seq-len 64 cuts every chat"):
        bench_examples(tok, ChatTemplate(), 64, min_tokens=1)


def test_step_flops_count_the_head_at_supervised_positions_and_no_weight_gradient_under_lora(chat_ckpt):
    cfg = load_config(chat_ckpt)
    head = cfg.vocab_size * cfg.d_model
    full = sft_step_flops(cfg, tokens=128, supervised=128, attended=2 * 64 * 64)
    assert full == pytest.approx(128 * flops_per_token(cfg, 64))  # two whole 64-token windows: the usual count
    body = cfg.num_params() - head
    attention = 12 * cfg.n_layers * cfg.d_model * (100 * 100 + 28 * 28)
    assert sft_step_flops(cfg, 128, 40, 100 * 100 + 28 * 28) == pytest.approx(
        128 * 6 * body + 40 * 6 * head + attention)
    lora = sft_step_flops(cfg, 128, 40, 100 * 100 + 28 * 28, adapter_weights=1000)
    assert lora == pytest.approx(128 * (4 * body + 6 * 1000) + 40 * 4 * head + attention)


def _bench(capsys, *args: str) -> str:
    main(["bench", "sft", *args])
    return capsys.readouterr().out


def test_bench_sft_json_reports_lora_and_full_side_by_side(chat_ckpt, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("LLM_HOME", str(tmp_path))
    save_matmul_peak(measure_matmul_peak(sizes=(64,), repeats=1, seconds=0.001))
    out = _bench(capsys, "--model", str(chat_ckpt), "--seq-len", "512", "--steps", "2", "--warmup", "1",
                 "--grad-accum", "2", "--threads", "1", "--lora", "4", "--vs-full", "--json")
    r = json.loads(out)
    assert [x["label"] for x in r["runs"]] == ["llm LoRA r4", "llm full"]
    lora, full = r["runs"]
    for run in r["runs"]:
        assert all(run[k] is not None for k in RUN_FIELDS)
        assert 0 < run["supervised_tokens"] < run["tokens"] and len(run["step_s"]) == 2
        assert run["mfu"] == pytest.approx(run["gflops_per_s"] / r["matmul_peak_gflops"])
        assert run["tokens"] >= 2 * 2 * 256  # packed rows are more than half full
    assert lora["trainable_params"] < full["trainable_params"] == full["params"]
    assert r["ratios"]["lora_vs_full_tok_per_s"] == pytest.approx(lora["tok_per_s"] / full["tok_per_s"])
    assert r["ratios"]["lora_vs_full_peak_rss"] == pytest.approx(lora["peak_rss_mb"] / full["peak_rss_mb"])


def test_bench_sft_table_without_a_measured_peak(chat_ckpt, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("LLM_HOME", str(tmp_path))
    out = _bench(capsys, "--model", str(chat_ckpt), "--seq-len", "512", "--steps", "1", "--warmup", "0",
                 "--grad-accum", "1", "--threads", "1", "--no-packing")
    for field in ("supervised tok/s", "tok/s", "MFU", "peak RSS MiB", "load avg", "llm full", "padded"):
        assert field in out
    assert "llm bench matmul" in out  # MFU says what it needs


def test_vs_trl_without_trl_says_what_to_install(monkeypatch):
    monkeypatch.setattr("llm.train.bench_trl._importable", lambda name: name != "peft")
    _require(SFTBenchSpec(model="m"))  # a full fine-tune needs no peft
    with pytest.raises(ConfigError, match="needs peft.*pip install"):
        _require(SFTBenchSpec(model="m", lora=8))


def test_bench_sft_bad_model_is_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "sft", "--model", "/nonexistent/ckpt", "--steps", "1"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and err.startswith("error: llm full: ") and err.count("\n") == 1
    assert "/nonexistent/ckpt" in err


def test_lora_under_bf16_stores_the_frozen_base_in_bf16_and_saves_it_as_loaded(chat_ckpt, tmp_path, post_overrides):
    from safetensors.torch import load_file

    from llm.train.config import load_train_config
    from llm.train.sft import SFT_DEFAULTS, sft

    data = write_jsonl(tmp_path / "rows.jsonl", synthetic_chat_rows(12, seed=1))
    cfg = load_train_config(None, [*post_overrides, "train.seq_len=512", f"model.checkpoint={chat_ckpt}",
                                   f"data.path={data}", "lora.rank=4", "train.precision=bf16", "train.max_steps=2",
                                   "train.epochs=null", "run.name=lora-bf16", f"run.out={tmp_path / 'out'}"],
                            defaults=SFT_DEFAULTS)
    result = sft(cfg)
    base = load_file(str(chat_ckpt / "model.safetensors"))
    saved = load_file(str(result.checkpoint / "model.safetensors"))
    adapted = [k for k in saved if k.endswith((".wq.weight", ".w_down.weight"))]
    assert adapted and all(saved[k].dtype == torch.float32 for k in saved)
    for k in adapted:  # what every bf16 matmul saw, kept in the checkpoint's float32
        assert torch.equal(saved[k], base[k].to(torch.bfloat16).float())
    assert torch.equal(saved["tok_emb.weight"], base["tok_emb.weight"])  # not adapted: untouched
    x = torch.randint(0, 100, (1, 12))
    with torch.no_grad():
        load_checkpoint(result.checkpoint).model(x)  # the adapter loads and runs in float32


def test_vs_trl_runs_the_same_rows_through_sft_trainer(chat_ckpt, monkeypatch, tmp_path, capsys):
    pytest.importorskip("trl")
    pytest.importorskip("peft")
    monkeypatch.setenv("LLM_HOME", str(tmp_path))
    r = json.loads(_bench(capsys, "--model", str(chat_ckpt), "--seq-len", "512", "--steps", "1", "--warmup", "1",
                          "--grad-accum", "1", "--threads", "1", "--lora", "4", "--vs-trl", "--json"))
    assert [x["label"] for x in r["runs"]] == ["llm LoRA r4", "trl LoRA r4"]
    ours, theirs = r["runs"]
    assert theirs["trainable_params"] == ours["trainable_params"]  # same rank and targets
    assert 0 < theirs["supervised_tokens"] < theirs["tokens"] and set(theirs["versions"]) >= {"trl", "peft"}
    assert r["ratios"]["llm_vs_trl_lora_tok_per_s"] == pytest.approx(ours["tok_per_s"] / theirs["tok_per_s"])
