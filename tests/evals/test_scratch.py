"""Scratch folders: a killed run's sandboxes are swept by the next run, nothing else ever is."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys

from evals.scratch import Scratch, sweep


def test_the_next_run_sweeps_a_killed_runs_folder_and_nothing_else(tmp_path):
    # A run that was killed: its process held the lock and died with it.
    code = (
        "import os, sys; from evals.scratch import Scratch; s = Scratch.create(sys.argv[1]); "
        "(s.root / 'evals-task-x' / 'workspace').mkdir(parents=True); print(s.root, flush=True); os._exit(0)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True)
    dead = tmp_path / os.path.basename(out.stdout.strip())
    assert (dead / "evals-task-x" / "workspace").is_dir()
    live = Scratch.create(tmp_path)  # this "run" sweeps on creation
    assert not dead.exists()
    # Never touched: a live run's folder, a look-alike without the lock file, a symlink, other temp dirs.
    other = Scratch.create(tmp_path)
    (tmp_path / "iclaw-eval-lookalike").mkdir()
    (tmp_path / "iclaw-eval-link").symlink_to(tmp_path / "iclaw-eval-lookalike")
    (tmp_path / "iclaw-tmp-foreign").mkdir()
    assert sweep(tmp_path) == []
    assert live.root.is_dir() and other.root.is_dir()
    assert (tmp_path / "iclaw-eval-lookalike").is_dir() and (tmp_path / "iclaw-tmp-foreign").is_dir()
    other.remove()
    live.remove()
    assert not live.root.exists() and not other.root.exists()


def test_a_folder_is_never_seen_unlocked(tmp_path):
    scratch = Scratch.create(tmp_path)
    fd = os.open(scratch.root / ".lock", os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            locked = False
        except BlockingIOError:
            locked = True
    finally:
        os.close(fd)
    assert locked
    scratch.remove()
