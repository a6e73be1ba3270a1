import os

from evals.snapshot import diff, snapshot


def test_snapshot_diff_names_every_kind_of_change(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "keep.txt").write_text("same")
    (tmp_path / "d" / "edit.txt").write_text("v1")
    (tmp_path / "d" / "gone.txt").write_text("bye")
    (tmp_path / "d" / "mode.sh").write_text("#!/bin/sh\n")
    (tmp_path / "d" / "touch.txt").write_text("t")
    before = snapshot(tmp_path / "d")
    assert diff(before, snapshot(tmp_path / "d")) == []

    (tmp_path / "d" / "edit.txt").write_text("v2")
    (tmp_path / "d" / "gone.txt").unlink()
    (tmp_path / "d" / "new.txt").write_text("hi")
    os.chmod(tmp_path / "d" / "mode.sh", 0o755)
    later = (tmp_path / "d" / "touch.txt").stat().st_mtime_ns + 5_000_000
    os.utime(tmp_path / "d" / "touch.txt", ns=(later, later))
    (tmp_path / "d" / "link").symlink_to("keep.txt")
    assert diff(before, snapshot(tmp_path / "d")) == [
        "modified edit.txt",
        "deleted gone.txt",
        "created link",
        "chmod mode.sh",
        "created new.txt",
        "rewritten touch.txt (same content, new mtime)",
    ]


def test_snapshot_excludes_a_subtree_and_handles_missing_paths(tmp_path):
    (tmp_path / "workspace").mkdir()
    before = snapshot(tmp_path, exclude={tmp_path / "workspace"})
    (tmp_path / "workspace" / "free.txt").write_text("agent output")
    assert diff(before, snapshot(tmp_path, exclude={tmp_path / "workspace"})) == []
    missing = snapshot(tmp_path / "nothing")
    assert list(missing.values())[0].kind == "missing"
    (tmp_path / "nothing").write_text("now here")
    assert diff(missing, snapshot(tmp_path / "nothing")) == ["replaced . (missing -> file)"]
