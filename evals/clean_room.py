"""The clean room: a fresh directory where a check runs the agent's work against pristine files.

A check that runs code must not run it where the agent left it. A workspace can hold
files that change what a test runner does (`pytest.ini` addopts, `conftest.py`,
`setup.cfg`, `tox.ini`, `pyproject.toml`), modules that shadow the runner or the standard
library (`pytest.py`, `sitecustomize.py`, `.pth` files), stale bytecode, or a *file*
where a hidden test directory should go. A room holds only

- the candidate files the task names (`copy`), taken from the workspace with every such
  file left out (`EXCLUDED_NAMES`, `EXCLUDED_SUFFIXES`), and
- pristine files from the task's fixtures (`files`): tests, verifier scripts, expected
  data — never a copy of anything the agent could have edited.

The room is its own temporary directory outside the sandbox and is deleted afterwards.
`run_pytest` runs pytest there isolated from every configuration source and reads the
outcome from pytest's JUnit XML report, not from the exit code alone.

This module knows files and processes, not tasks or agents.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from evals.file_spec import FileContent, RelPath, place_files
from evals.shell import run_argv

__all__ = [
    "RoomSpec",
    "RoomError",
    "check_layout",
    "TestCounts",
    "EXCLUDED_NAMES",
    "EXCLUDED_SUFFIXES",
    "clean_room",
    "run_pytest",
    "pytest_argv",
]

EXCLUDED_NAMES = frozenset({
    "conftest.py", "pytest.ini", ".pytest.ini", "setup.cfg", "tox.ini", "pyproject.toml",
    "pytest.py", "_pytest", "sitecustomize.py", "usercustomize.py", "__pycache__", ".pytest_cache",
})
"""Names never copied from the workspace into a room, at any depth."""

EXCLUDED_SUFFIXES = (".pth", ".pyc")


class RoomSpec(BaseModel):
    """What goes into a room: `copy` from the workspace, `files` from the task's fixtures."""

    model_config = ConfigDict(extra="forbid")

    copy_: list[RelPath] = Field(default_factory=list, alias="copy")
    files: dict[RelPath, FileContent] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _disjoint(self) -> RoomSpec:
        if not self.copy_ and not self.files:
            raise ValueError("a room needs files to copy from the workspace or pristine files, or both")
        check_layout(self.copy_, list(self.files))
        return self


def check_layout(copy: list[str], files: list[str]) -> None:
    """ValueError when a path would be both copied from the workspace and placed from a fixture."""
    for rel in copy:
        clash = [f for f in files if f == rel or f.startswith(rel + "/") or rel.startswith(f + "/")]
        if clash:
            raise ValueError(f"{rel!r} would be both copied from the workspace and placed from a fixture ({clash[0]!r})")


class RoomError(Exception):
    """A candidate file could not be copied into the room; the message is the check's reason."""


@contextmanager
def clean_room(spec: RoomSpec, workspace: Path) -> Iterator[Path]:
    """A fresh directory holding `spec`'s files; deleted on exit. Raises RoomError."""
    root = Path(tempfile.mkdtemp(prefix="evals-room-")).resolve()
    try:
        room = root / "room"
        room.mkdir()
        for rel in spec.copy_:
            _copy_candidate(workspace, rel, room / rel)
        place_files(spec.files, room)
        yield room
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _excluded(name: str) -> bool:
    return name in EXCLUDED_NAMES or name.endswith(EXCLUDED_SUFFIXES)


def _copy_candidate(workspace: Path, rel: str, target: Path) -> None:
    source = workspace / rel
    if not os.path.lexists(source):
        raise RoomError(f"{rel} is not in the workspace")
    if source.is_symlink():
        raise RoomError(f"{rel} is a symbolic link, not the file itself")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        if source.is_dir():
            # symlinks=True: a link inside the candidate stays a link (it is never followed
            # out of the workspace while copying).
            shutil.copytree(source, target, symlinks=True, ignore=lambda _dir, names: [n for n in names if _excluded(n)])
        elif source.is_file():
            shutil.copyfile(source, target)
        else:
            raise RoomError(f"{rel} is not a regular file or directory")
    except (OSError, shutil.Error) as exc:
        raise RoomError(f"{rel} could not be copied: {exc}") from exc


@dataclass
class TestCounts:
    """Outcomes read from pytest's JUnit XML report."""

    __test__ = False  # not a pytest test class, whatever its name

    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0

    @property
    def ran(self) -> int:
        return self.passed + self.failed + self.errors + self.skipped

    def describe(self) -> str:
        parts = [f"{n} {label}" for n, label in ((self.passed, "passed"), (self.failed, "failed"),
                                                (self.errors, "errors"), (self.skipped, "skipped")) if n]
        return ", ".join(parts) or "no tests"


def pytest_argv(room: Path, report: Path, targets: list[str]) -> list[str]:
    """The isolated pytest command line for a room.

    `-I`: no PYTHON* variables, no user site, the working directory not on sys.path;
    `-c /dev/null` and `--rootdir`: no ini file is looked for (pytest.ini, setup.cfg,
    tox.ini, pyproject.toml); `--noconftest`: no conftest.py is imported; `-p
    no:cacheprovider`: nothing is written or read from a cache; `pythonpath` puts the room
    (and only the room) on sys.path so tests import the candidate.
    """
    return [
        sys.executable, "-I", "-B", "-m", "pytest",
        "-c", os.devnull, "--rootdir", str(room), "--noconftest", "-p", "no:cacheprovider",
        "-o", f"pythonpath={room}", "-o", "junit_family=xunit2", f"--junitxml={report}",
        "-q", "--tb=line", "--color=no", *targets,
    ]


async def run_pytest(room: Path, targets: list[str], env: dict[str, str], timeout_s: float) -> tuple[int | None, str, TestCounts | None]:
    """Run `targets` (paths inside `room`) with pytest: (exit code or None on timeout, output tail, counts).

    Counts are None when pytest wrote no report (it crashed, or the process was ended).
    """
    env = {k: v for k, v in env.items() if not k.startswith("PYTEST_") or k == "PYTEST_DISABLE_PLUGIN_AUTOLOAD"}
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    report = room.parent / "report.xml"
    report.unlink(missing_ok=True)
    code, output = await run_argv(pytest_argv(room, report, targets), room, env, timeout_s)
    return code, output, _read_report(report)


def _read_report(report: Path) -> TestCounts | None:
    try:
        tree = ET.parse(report)
    except (OSError, ET.ParseError):
        return None
    counts = TestCounts()
    for case in tree.iter("testcase"):
        kinds = {child.tag for child in case}
        if "error" in kinds:
            counts.errors += 1
        elif "failure" in kinds:
            counts.failed += 1
        elif "skipped" in kinds:
            counts.skipped += 1
        else:
            counts.passed += 1
    # Collection errors (a test module that cannot import the candidate) have no testcase
    # of their own in older pytest versions; the suite's `errors` attribute still counts them.
    for suite in tree.iter("testsuite"):
        counts.errors = max(counts.errors, int(suite.get("errors", 0)))
    return counts
