"""`prepare_data`: shards hold exactly the documents' ids, split into train/val, for every source kind."""

import json

import numpy as np
import pytest

from llm.data.prepare import DOC_SEPARATOR, prepare_data, train_tokenizer
from llm.data.shards import PreparedData
from llm.errors import DataError

DOCS = [f"Document number {i}: the quick brown fox jumps over the lazy dog {i * 7}." for i in range(200)]


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer("stdlib:textwrap", 400)


def _decoded_docs(data: PreparedData, split: str) -> list[str]:
    ids = np.concatenate([np.asarray(a) for a in getattr(data, split)]).tolist()
    sep = data.tokenizer.token_id(DOC_SEPARATOR)
    docs, cur = [], None
    for i in ids:
        if i == sep:
            if cur is not None:
                docs.append(cur)
            cur = []
        else:
            cur.append(i)
    docs.append(cur)
    return [data.tokenizer.decode(d) for d in docs]


@pytest.mark.parametrize("kind", ["txt", "jsonl", "parquet", "csv"])
def test_each_local_kind_round_trips(tmp_path, tok, kind):
    src = tmp_path / "src"
    src.mkdir()
    if kind == "txt":
        for i, d in enumerate(DOCS):
            (src / f"{i:03d}.txt").write_text(d)
    elif kind == "jsonl":
        (src / "a.jsonl").write_text("\n".join(json.dumps({"text": d}) for d in DOCS))
    elif kind == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist([{"text": d} for d in DOCS]), src / "a.parquet")
    else:
        (src / "a.csv").write_text("text\n" + "\n".join(f'"{d}"' for d in DOCS))
    meta = prepare_data(str(src), tok, tmp_path / "out", val_fraction=0.1)
    data = PreparedData.open(tmp_path / "out")
    train, val = _decoded_docs(data, "train"), _decoded_docs(data, "val")
    assert sorted(train + val) == sorted(DOCS)  # every document exactly once, in one split
    assert 5 <= len(val) <= 40 and meta["val"]["documents"] == len(val)
    assert meta["dtype"] == "uint16" and data.train[0].dtype == np.uint16
    assert meta["train"]["bytes"] + meta["val"]["bytes"] == sum(len(d.encode()) for d in DOCS)


def test_stdlib_and_deterministic_split(tmp_path, tok):
    a = prepare_data("stdlib:json,textwrap", tok, tmp_path / "a", val_fraction=0.2)
    b = prepare_data("stdlib:json,textwrap", tok, tmp_path / "b", val_fraction=0.2)
    assert a["train"]["tokens"] == b["train"]["tokens"] > 1000
    assert a["val"]["tokens"] > 0 and a["source_kind"] == "stdlib"
    assert (tmp_path / "a" / "train_0000.bin").read_bytes() == (tmp_path / "b" / "train_0000.bin").read_bytes()


def test_single_document_gets_a_tail_validation_split(tmp_path, tok):
    (tmp_path / "one.txt").write_text(" ".join(DOCS))
    meta = prepare_data(str(tmp_path / "one.txt"), tok, tmp_path / "out", val_fraction=0.05)
    total = meta["train"]["tokens"] + meta["val"]["tokens"]
    assert meta["train"]["tokens"] > 0 and meta["val"]["tokens"] >= total * 0.05
    data = PreparedData.open(tmp_path / "out")
    joined = data.tokenizer.decode(np.concatenate([np.asarray(data.train[0]), np.asarray(data.val[0])]).tolist())
    assert joined == DOC_SEPARATOR + " ".join(DOCS)


def test_shards_split_at_size_limit(tmp_path, tok):
    meta = prepare_data("stdlib:textwrap", tok, tmp_path / "out", shard_tokens=1000, val_fraction=0.01)
    shards = meta["train"]["shards"] + meta["val"]["shards"]
    assert len(meta["train"]["shards"]) > 2 and all(s["tokens"] <= 1000 for s in shards)
    assert PreparedData.open(tmp_path / "out").tokens("train") == sum(s["tokens"] for s in meta["train"]["shards"])


def test_refuses_to_overwrite_and_detects_foreign_tokenizer(tmp_path, tok):
    prepare_data("stdlib:textwrap", tok, tmp_path / "out")
    with pytest.raises(DataError, match="already exists; pass --force"):
        prepare_data("stdlib:textwrap", tok, tmp_path / "out")
    train_tokenizer("stdlib:json", 300).save(tmp_path / "out")  # replace tokenizer.json behind the shards' back
    with pytest.raises(DataError, match="not the tokenizer the shards were made with"):
        PreparedData.open(tmp_path / "out")
    with pytest.raises(DataError, match="does not exist; create it with `llm data prepare"):
        PreparedData.open(tmp_path / "nowhere")


def test_truncated_shard_is_reported(tmp_path, tok):
    prepare_data("stdlib:textwrap", tok, tmp_path / "out")
    f = tmp_path / "out" / "train_0000.bin"
    f.write_bytes(f.read_bytes()[:-2])
    with pytest.raises(DataError, match="train_0000.bin: missing or truncated"):
        PreparedData.open(tmp_path / "out")
