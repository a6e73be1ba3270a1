"""llm.atomic: a file or a directory is replaced whole or not at all."""

import os

import pytest

from llm.atomic import atomic_directory, atomic_write_text, recover


def test_write_text_replaces_the_file_and_leaves_no_temp(tmp_path):
    f = tmp_path / "sub" / "summary.json"
    atomic_write_text(f, "old")
    atomic_write_text(f, "new ✓")
    assert f.read_text(encoding="utf-8") == "new ✓"
    assert sorted(p.name for p in f.parent.iterdir()) == ["summary.json"]


def test_directory_appears_only_when_complete(tmp_path):
    out = tmp_path / "data"
    with atomic_directory(out) as tmp:
        (tmp / "a.bin").write_bytes(b"1")
        (tmp / "shards").mkdir()
        (tmp / "shards" / "b.bin").write_bytes(b"2")
        assert not out.exists()
    assert (out / "a.bin").read_bytes() == b"1" and (out / "shards" / "b.bin").read_bytes() == b"2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_a_failed_write_keeps_the_old_directory(tmp_path):
    out = tmp_path / "ckpt"
    with atomic_directory(out) as tmp:
        (tmp / "v").write_text("1")
    with pytest.raises(RuntimeError):
        with atomic_directory(out) as tmp:
            (tmp / "v").write_text("2")
            raise RuntimeError("killed midway")
    assert (out / "v").read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    with atomic_directory(out) as tmp:
        (tmp / "v").write_text("3")
    assert (out / "v").read_text() == "3" and sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_recover_restores_a_directory_moved_aside(tmp_path):
    out = tmp_path / "ckpt"
    with atomic_directory(out) as tmp:
        (tmp / "v").write_text("1")
    os.rename(out, tmp_path / ".ckpt.old")  # a process died between the two renames
    recover(out)
    assert (out / "v").read_text() == "1"
    recover(out)  # nothing to do
    assert (out / "v").read_text() == "1"
