"""Post-training rows: every format converts to the shared shape, the loss mask is exact, bad rows are named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llm.chat_template import render_chat
from llm.data.chat_data import load_dpo_rows, load_sft_rows
from llm.errors import DataError
from llm.tokenizer import Tokenizer

SAMPLES = Path(__file__).resolve().parents[3] / "llm" / "data" / "samples"


@pytest.fixture(scope="module")
def tok():
    from llm.chat_template import render_chat_text

    boot = Tokenizer.train(["hello"], 260)
    text = render_chat_text(boot, [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}])
    return Tokenizer.train([text * 5, (SAMPLES / "sft-messages.jsonl").read_text()], 500)


def supervised_runs(tok, ids, mask) -> list[str]:
    """The decoded text of each maximal run of mask == 1."""
    runs, cur = [], []
    for i, m in zip(ids, mask):
        if m:
            cur.append(i)
        elif cur:
            runs.append(tok.decode(cur))
            cur = []
    if cur:
        runs.append(tok.decode(cur))
    return runs


def test_messages_mask_covers_assistant_text_calls_and_im_end(tok):
    rows = load_sft_rows(SAMPLES / "sft-messages.jsonl").rows
    ids, mask = render_chat(tok, rows[1]["messages"], rows[1]["tools"])
    assert supervised_runs(tok, ids, mask) == [
        '<tool_call>{"name": "read_file", "arguments": {"path": "gateway.ini"}}</tool_call><|im_end|>',
        "7312<|im_end|>",
    ]


def test_sharegpt_converts_roles_and_system(tok):
    rows = load_sft_rows(SAMPLES / "sft-sharegpt.jsonl", "sharegpt").rows
    assert rows[1]["messages"] == [
        {"role": "system", "content": "Answer in one word."},
        {"role": "user", "content": "Colour of a clear daytime sky?"},
        {"role": "assistant", "content": "Blue."},
    ]
    ids, mask = render_chat(tok, rows[2]["messages"])
    assert supervised_runs(tok, ids, mask) == ["144.<|im_end|>", "1728.<|im_end|>"]


def test_alpaca_joins_instruction_and_input(tok):
    rows = load_sft_rows(SAMPLES / "sft-alpaca.json", "alpaca").rows
    assert rows[0]["messages"][0]["content"] == "Reverse the word.\n\nlantern"
    assert rows[1]["messages"][0]["content"] == "Name the largest planet in the solar system."
    ids, mask = render_chat(tok, rows[0]["messages"])
    assert supervised_runs(tok, ids, mask) == ["nretnal<|im_end|>"]


@pytest.mark.parametrize("fmt,file", [("pairs", "dpo-pairs.jsonl"), ("hh-rlhf", "dpo-hh-rlhf.jsonl"),
                                      ("ultrafeedback", "dpo-ultrafeedback.jsonl")])
def test_dpo_formats_share_the_prompt(fmt, file):
    rows = load_dpo_rows(SAMPLES / file, fmt).rows
    assert rows and all(r["chosen"]["role"] == r["rejected"]["role"] == "assistant" for r in rows)
    assert all(r["prompt"][-1]["role"] in ("user", "tool") for r in rows)


def test_hh_rlhf_multi_turn_keeps_the_dialogue():
    row = load_dpo_rows(SAMPLES / "dpo-hh-rlhf.jsonl", "hh-rlhf").rows[1]
    assert [m["role"] for m in row["prompt"]] == ["user", "assistant", "user"]
    assert (row["chosen"]["content"], row["rejected"]["content"]) == ("4.", "5.")


def test_parquet_reads_like_jsonl(tmp_path):
    import datasets

    rows = [json.loads(line) for line in (SAMPLES / "sft-sharegpt.jsonl").read_text().splitlines()]
    datasets.Dataset.from_list([{"conversations": r["conversations"]} for r in rows]).to_parquet(tmp_path / "s.parquet")
    assert len(load_sft_rows(tmp_path / "s.parquet", "sharegpt").rows) == 3


def test_bad_rows_are_counted_with_row_numbers(tmp_path):
    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    bad_role = {"messages": [{"role": "wizard", "content": "hi"}, {"role": "assistant", "content": "x"}]}
    no_role = {"messages": [{"content": "hi"}, {"role": "assistant", "content": "x"}]}
    bad_call = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "tool_calls": [
        {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]}]}
    f = tmp_path / "rows.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in [good, bad_role, good, no_role, bad_call]))
    with pytest.raises(DataError) as err:
        load_sft_rows(f)
    msg = str(err.value)
    assert "3 of 5 rows" in msg and "row 2: message 0 has unknown role 'wizard'" in msg
    assert "row 4: message 0 has no role" in msg and "row 5:" in msg and "--skip-bad" in msg
    assert "\n" not in msg
    loaded = load_sft_rows(f, skip_bad=True)
    assert len(loaded.rows) == 2 and [n for n, _ in loaded.bad] == [2, 4, 5]


def test_weight_zero_survives_loading_and_leaves_the_loss(tok, tmp_path):
    slip = {"role": "assistant", "content": "6*7=", "weight": 0}
    row = {"messages": [{"role": "user", "content": "6*7?"}, slip, {"role": "user", "content": "again"},
                        {"role": "assistant", "content": "42"}]}
    plain = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    only_slip = {"messages": [{"role": "user", "content": "hi"}, slip]}
    bad = {"messages": [{"role": "user", "content": "hi"}, {**slip, "weight": 2}]}
    f = tmp_path / "rows.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in [row, plain, only_slip, bad]))
    loaded = load_sft_rows(f, skip_bad=True)  # through Arrow: rows without "weight" get None, dropped on load
    assert loaded.bad == [(3, "no assistant message with weight 1: nothing to learn from"),
                          (4, "message 1 has weight 2; an assistant message's weight is 0 or 1")]
    first, second = loaded.rows
    assert "weight" not in second["messages"][1]
    ids, mask = render_chat(tok, first["messages"], first["tools"])
    assert supervised_runs(tok, ids, mask) == ["42<|im_end|>"]


def test_unknown_format_and_unreadable_files(tmp_path):
    with pytest.raises(DataError, match="unknown SFT format 'chatml'"):
        load_sft_rows(SAMPLES / "sft-messages.jsonl", "chatml")
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(DataError, match="expected a .json, .jsonl or .parquet file"):
        load_sft_rows(tmp_path / "x.txt")
    (tmp_path / "x.jsonl").write_text("{not json\n")
    with pytest.raises(DataError, match="cannot read it"):
        load_sft_rows(tmp_path / "x.jsonl")
    with pytest.raises(DataError, match='needs "chosen" and "rejected"'):
        load_dpo_rows(SAMPLES / "sft-messages.jsonl")
