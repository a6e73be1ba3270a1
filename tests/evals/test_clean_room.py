"""The clean room: what is copied in, what is left out, and how pytest runs and is counted there."""

import asyncio
import os
from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from evals.checks import WORKSPACE_DIR, Check, CheckContext
from evals.clean_room import RoomError, RoomSpec, clean_room

CHECK = TypeAdapter(Check)

SOURCE = "def double(x):\n    return 2 * x\n"
TESTS = "from calc import double\n\n\ndef test_one():\n    assert double(1) == 2\n\n\ndef test_two():\n    assert double(2) == 4\n"


@pytest.fixture
def ctx(tmp_path: Path) -> CheckContext:
    (tmp_path / WORKSPACE_DIR).mkdir()
    return CheckContext(tmp_path)


def pytest_check(tmp_path: Path, tests: str = TESTS, expect_passed: int = 2, copy=("calc.py",)):
    fixtures = tmp_path / "fixtures"
    fixtures.mkdir(exist_ok=True)
    (fixtures / "test_calc.py").write_text(tests)
    spec = {"type": "pytest", "copy": list(copy), "tests": {"tests/test_calc.py": {"from": "fixtures/test_calc.py"}},
            "expect_passed": expect_passed}
    return CHECK.validate_python(spec, context={"base_dir": tmp_path})


def evaluate(check, ctx):
    async def go():
        return await check.evaluate(ctx, await check.prepare(ctx))

    return asyncio.run(go())


def test_candidate_directories_leave_config_shadowing_modules_and_bytecode_behind(tmp_path):
    ws = tmp_path / "ws"
    pkg = ws / "pkg"
    (pkg / "__pycache__").mkdir(parents=True)
    (pkg / "sub").mkdir()
    keep = {"pkg/__init__.py", "pkg/core.py", "pkg/sub/data.txt"}
    drop = {"pkg/conftest.py", "pkg/pytest.py", "pkg/sitecustomize.py", "pkg/usercustomize.py", "pkg/evil.pth",
            "pkg/pytest.ini", "pkg/setup.cfg", "pkg/tox.ini", "pkg/pyproject.toml", "pkg/__pycache__/core.cpython-311.pyc",
            "pkg/sub/conftest.py"}
    for rel in keep | drop:
        (ws / rel).write_text("x\n")
    with clean_room(RoomSpec(copy=["pkg"]), ws) as room:
        copied = {p.relative_to(room).as_posix() for p in room.rglob("*") if p.is_file()}
        assert room.parent != ws and not room.is_relative_to(ws)
    assert copied == keep
    assert not room.exists()  # deleted afterwards


def test_pristine_files_are_placed_and_missing_or_odd_candidates_are_reasons(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "real.py").write_text("X = 1\n")
    os.symlink(ws / "real.py", ws / "link.py")
    os.mkfifo(ws / "pipe.py")
    with clean_room(RoomSpec(copy=["real.py"], files={"tests/t.py": "pristine\n"}), ws) as room:
        assert (room / "tests" / "t.py").read_text() == "pristine\n" and (room / "real.py").read_text() == "X = 1\n"
    for rel, reason in [("gone.py", "gone.py is not in the workspace"), ("link.py", "link.py is a symbolic link"),
                        ("pipe.py", "pipe.py is not a regular file or directory")]:
        with pytest.raises(RoomError, match=reason), clean_room(RoomSpec(copy=[rel]), ws):
            pass


def test_room_schema():
    with pytest.raises(ValidationError, match="needs files"):
        RoomSpec()
    with pytest.raises(ValidationError, match="both copied from the workspace and placed from a fixture"):
        RoomSpec(copy=["tests"], files={"tests/t.py": "x"})
    with pytest.raises(ValidationError, match="both copied"):
        CHECK.validate_python({"type": "pytest", "copy": ["tests/t.py"], "tests": {"tests/t.py": "x"}, "expect_passed": 1})
    with pytest.raises(ValidationError, match="expect_passed"):
        CHECK.validate_python({"type": "pytest", "copy": ["a.py"], "tests": {"t.py": "x"}})


def test_pytest_check_passes_only_when_exactly_the_expected_tests_pass(tmp_path, ctx):
    (ctx.workspace / "calc.py").write_text(SOURCE)
    ok = evaluate(pytest_check(tmp_path), ctx)
    assert ok.passed and ok.detail == "2 of 2 expected tests passed"
    more = evaluate(pytest_check(tmp_path, expect_passed=3), ctx)  # a test went missing from the run
    assert not more.passed and "expected 3 tests to pass; ran 2: 2 passed" in more.detail
    (ctx.workspace / "calc.py").write_text("def double(x):\n    return x + 2\n")
    wrong = evaluate(pytest_check(tmp_path), ctx)
    assert not wrong.passed and "ran 2: 1 passed, 1 failed (exit 1)" in wrong.detail


def test_skips_and_collection_errors_are_not_passes(tmp_path, ctx):
    (ctx.workspace / "calc.py").write_text(SOURCE)
    skipping = TESTS.replace("def test_two", "import pytest\n\n\n@pytest.mark.skip\ndef test_two")
    skipped = evaluate(pytest_check(tmp_path, tests=skipping), ctx)
    assert not skipped.passed and "1 passed, 1 skipped" in skipped.detail
    (ctx.workspace / "calc.py").write_text("raise ImportError('half written')\n")
    broken = evaluate(pytest_check(tmp_path), ctx)
    assert not broken.passed and "ran 1: 1 errors (exit 2)" in broken.detail
    (ctx.workspace / "calc.py").write_text("import os\nos._exit(0)\n")  # exit 0 before any test ran
    bailed = evaluate(pytest_check(tmp_path), ctx)
    assert not bailed.passed and bailed.detail.startswith("pytest wrote no report (exit 0)")


def test_the_workspace_environment_takes_no_part(tmp_path, ctx, monkeypatch):
    """PYTEST_ADDOPTS, PYTHONPATH and a workspace sitecustomize/pytest.ini reach nothing in the room."""
    (ctx.workspace / "calc.py").write_text(SOURCE)
    (ctx.workspace / "pytest.ini").write_text("[pytest]\naddopts = -k nothing\n")
    (ctx.workspace / "sitecustomize.py").write_text("raise SystemExit(0)\n")
    ctx.env = dict(ctx.env, PYTEST_ADDOPTS="-k nothing", PYTHONPATH=str(ctx.workspace))
    result = evaluate(pytest_check(tmp_path), ctx)
    assert result.passed, result.detail


def test_a_missing_candidate_fails_with_the_reason(tmp_path, ctx):
    result = evaluate(pytest_check(tmp_path), ctx)
    assert not result.passed and result.detail == "tests not run: calc.py is not in the workspace"


def test_command_check_in_a_room_sees_only_its_files(tmp_path, ctx):
    (ctx.workspace / "out.txt").write_text("result\n")
    (ctx.workspace / "other.txt").write_text("x\n")
    spec = {"type": "command", "run": "test \"$(ls | sort | tr '\\n' ' ')\" = 'out.txt verify.sh ' && sh verify.sh",
            "room": {"copy": ["out.txt"], "files": {"verify.sh": "grep -q result out.txt\n"}}}
    check = CHECK.validate_python(spec)
    assert evaluate(check, ctx).passed
    (ctx.workspace / "out.txt").unlink()
    missing = evaluate(check, ctx)
    assert not missing.passed and "not run: out.txt is not in the workspace" in missing.detail
