"""SOURCE strings: every kind is recognised and yields its documents; bad input is one clear error."""

import json
import os
import subprocess
import sys

import pytest

from llm.data.sources import iter_texts, parse_source, stdlib_files
from llm.errors import DataError


def test_stdlib_restricted_to_modules_in_fixed_order():
    files = stdlib_files(("json", "textwrap"))
    assert any(f.name == "textwrap.py" for f in files)
    assert any(f.parent.name == "json" and f.name == "decoder.py" for f in files)
    assert all(f.suffix == ".py" for f in files)
    assert not any(f.name == "shutil.py" for f in files)
    docs = list(iter_texts("stdlib:json,textwrap"))
    assert len(docs) == len([f for f in files if f.read_text(errors="replace").strip()])
    assert any("def dedent(" in d for d in docs)
    assert docs == list(iter_texts("stdlib:textwrap,json"))  # order does not depend on the spec order


def test_unknown_stdlib_module_names_valid_form():
    with pytest.raises(DataError, match=r"no module 'nosuch'.*stdlib:json"):
        list(iter_texts("stdlib:nosuch"))


def test_text_file_and_folder(tmp_path):
    (tmp_path / "a.txt").write_text("first document")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.md").write_text("second document")
    (tmp_path / "skip.bin").write_bytes(b"\x00\x01")
    assert list(iter_texts(str(tmp_path / "a.txt"))) == ["first document"]
    assert list(iter_texts(str(tmp_path))) == ["first document", "second document"]


def test_jsonl_parquet_csv_records(tmp_path):
    rows = [{"text": "alpha beta", "id": 1}, {"text": "", "id": 2}, {"text": "gamma", "id": 3}]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    (tmp_path / "d.csv").write_text("id,body\n1,hello there\n2,general kenobi\n")
    assert list(iter_texts(str(tmp_path / "d.jsonl"))) == ["alpha beta", "gamma"]  # empty records skipped
    assert list(iter_texts(str(tmp_path / "d.parquet"))) == ["alpha beta", "gamma"]
    assert list(iter_texts(str(tmp_path / "d.csv"), text_field="body")) == ["hello there", "general kenobi"]
    with pytest.raises(DataError, match=r"no field 'text'; available fields: id, body"):
        list(iter_texts(str(tmp_path / "d.csv")))


def test_kinds_and_errors(tmp_path):
    assert parse_source("stdlib").kind == "stdlib"
    hub = parse_source("someone/corpus:en")
    assert (hub.kind, hub.name, hub.config) == ("hub", "someone/corpus", "en")
    with pytest.raises(DataError, match="no such file or folder"):
        parse_source(str(tmp_path / "missing.jsonl"))
    (tmp_path / "x.jsonl").write_text("{}")
    (tmp_path / "y.csv").write_text("a\n1\n")
    with pytest.raises(DataError, match="mixes file kinds"):
        parse_source(str(tmp_path))
    (tmp_path / "broken.jsonl").write_text("{not json")
    with pytest.raises(DataError, match="broken.jsonl"):
        list(iter_texts(str(tmp_path / "broken.jsonl")))


def test_hub_dataset_offline_is_one_line_cli_error(tmp_path):
    # The hub client reads its offline switches at import time, hence a fresh process.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "llm",
            "data",
            "prepare",
            "no-such-user/no-such-dataset",
            "--vocab-size",
            "300",
            "--out",
            str(tmp_path / "d"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 1
    assert out.stderr.startswith("error: no-such-user/no-such-dataset: cannot reach the Hugging Face Hub")
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert not (tmp_path / "d").exists()
