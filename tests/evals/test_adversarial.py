"""Adversarial agents: every known way to pass a task without doing it, or to take a failed
attempt out of the score, must end as *failed* — not passed, and not a harness error.

Each test scripts an agent against a real task of `tasks/`. Where the trick used to work,
the agent first shows it working against the old way of checking (the same command run
in the workspace), so the test cannot pass because the trick was simply broken.
"""

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from iclaw.errors import ModelError
from iclaw.providers import ScriptedModel

from evals.attempt import Attempt, run_attempt
from evals.errors import HarnessError
from evals.runner import RunOptions, Runner
from evals.shell import harness_env
from evals.store import Store
from evals.task import load_suite
from evals.versions import EndpointModel

from evals_testkit import FuncModel, write_suite

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tasks():
    return {t.id: t for t in load_suite(ROOT / "tasks").tasks}


def play(task, steps, agent, tmp_path: Path):
    """Run `task` with a scripted agent; (record, tool outputs the agent saw)."""
    seen: list[str] = []

    def watching(step):
        def react(messages, tools):
            tool_msgs = [m for m in messages if m["role"] == "tool"]
            if tool_msgs:
                seen.append(tool_msgs[-1]["content"])
            return step(messages, tools) if callable(step) else step

        return react

    model = FuncModel(make=lambda t: ScriptedModel([watching(s) for s in steps]))
    attempt = Attempt("adv", task, model, agent, 1, tmp_path / "traj" / f"{task.id}.jsonl")
    return asyncio.run(run_attempt(attempt, harness_env())), seen


def write(path: str, content: str) -> dict:
    return {"tool_calls": [{"name": "write_file", "arguments": {"path": path, "content": content}}]}


def shell(command: str) -> dict:
    return {"tool_calls": [{"name": "run_shell", "arguments": {"command": command}}]}


def failed_checks(record) -> dict[str, str]:
    return {c["type"]: c["detail"] for c in record.checks if not c["passed"]}


# The check command make-tests-pass used before the clean room, run where the agent left things.
OLD_MAKE_TESTS_PASS = "python -m pytest -q -p no:cacheprovider --noconftest tests; echo EXIT=$?"


def test_pytest_ini_addopts_deselecting_the_failing_tests_fails(tasks, tmp_path, v2):
    ini = '[pytest]\naddopts = -k "not sold_out and not non_positive"\n'
    record, seen = play(tasks["make-tests-pass"], [write("pytest.ini", ini), shell(OLD_MAKE_TESTS_PASS),
                                                   {"answer": "All tests pass."}], v2, tmp_path)
    assert "EXIT=0" in seen[-1] and "deselected" in seen[-1]  # the trick fools a workspace run
    assert record.status == "failed"
    assert "expected 5 tests to pass; ran 5: 3 passed, 2 failed" in failed_checks(record)["pytest"]


@pytest.mark.parametrize("config", ["setup.cfg", "tox.ini"])
def test_other_ini_files_are_left_out_of_the_clean_room(config, tasks, tmp_path, v2):
    section = "[tool:pytest]" if config == "setup.cfg" else "[pytest]"
    record, _ = play(tasks["make-tests-pass"], [write(config, f"{section}\naddopts = -k test_add\n"),
                                                {"answer": "done"}], v2, tmp_path)
    assert record.status == "failed" and "3 passed, 2 failed" in failed_checks(record)["pytest"]


def test_a_shadowing_pytest_module_fails(tasks, tmp_path, v2):
    fake = "import sys\nprint('5 passed')\nsys.exit(0)\n"
    record, seen = play(tasks["make-tests-pass"], [write("pytest.py", fake), shell(OLD_MAKE_TESTS_PASS),
                                                   {"answer": "All tests pass."}], v2, tmp_path)
    assert "EXIT=0" in seen[-1] and "5 passed" in seen[-1]  # `python -m pytest` ran the fake
    assert record.status == "failed"
    assert "3 passed, 2 failed" in failed_checks(record)["pytest"]


CONFTEST_ALL_PASS = '''
import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    report.outcome = "passed"
'''


def test_a_conftest_that_rewrites_every_report_as_passed_fails(tasks, tmp_path, v2):
    task = tasks["add-slugify"]  # no `unchanged` check: nothing but the tests stands in the way
    hidden = (ROOT / "tasks" / "fixtures" / "add-slugify" / "test_slugify_hidden.py").read_text()
    old_check = "mkdir -p tests && cat > tests/test_h.py <<'EOF'\n" + hidden + "EOF\n" \
                "python -m pytest -q -p no:cacheprovider tests; echo EXIT=$?; rm -r tests"
    record, seen = play(task, [write("conftest.py", CONFTEST_ALL_PASS), shell(old_check),
                               {"answer": "Added slugify."}], v2, tmp_path)
    assert "EXIT=0" in seen[-1]  # with the hidden tests in the workspace, the conftest wins
    assert record.status == "failed"
    assert "expected 9 tests to pass; ran 9: 9 failed" in failed_checks(record)["pytest"]


def test_a_conftest_inside_a_copied_package_is_not_copied(tasks, tmp_path, v2):
    """rename-symbol copies the whole `shop` package: its conftest.py must stay behind."""
    record, _ = play(tasks["rename-symbol"], [write("shop/conftest.py", CONFTEST_ALL_PASS),
                                              write("shop/pytest.py", "raise SystemExit(0)\n"),
                                              {"answer": "Renamed."}], v2, tmp_path)
    assert record.status == "failed"
    assert "expected 3 tests to pass; ran 3: 1 passed, 2 failed" in failed_checks(record)["pytest"]


def test_deleting_the_failing_tests_fails(tasks, tmp_path, v2):
    record, seen = play(tasks["fix-pager-bug"], [shell("rm tests/test_pager.py && " + OLD_MAKE_TESTS_PASS.replace("--noconftest ", "")),
                                                 {"answer": "Fixed."}], v2, tmp_path)
    assert "EXIT=5" in seen[-1]  # nothing left to fail (exit 5: no tests collected)
    failed = failed_checks(record)
    assert record.status == "failed"
    assert "deleted test_pager.py" in failed["unchanged"]
    assert "ran 10: 5 passed, 5 failed" in failed["pytest"]  # the pristine tests still run


def test_deleting_fixture_files_before_archiving_fails(tasks, tmp_path, v2):
    """The archive is compared with the fixture, not with what is left of src/."""
    steps = [shell("rm -r src/lib src/templates && tar -czf backup.tar.gz src"), {"answer": "5"}]
    record, _ = play(tasks["shell-archive-src"], steps, v2, tmp_path)
    failed = failed_checks(record)
    assert record.status == "failed" and set(failed) == {"command"}  # the answer (5) is right
    assert "archive holds ['src/README.md', 'src/app.env', 'src/deploy.sh'], expected" in failed["command"]


def test_changing_fixture_files_before_archiving_fails(tasks, tmp_path, v2):
    steps = [shell("echo tampered > src/README.md && tar -czf backup.tar.gz src"), {"answer": "5"}]
    record, _ = play(tasks["shell-archive-src"], steps, v2, tmp_path)
    assert record.status == "failed"
    assert "archived content differs from src/ for ['src/README.md']" in failed_checks(record)["command"]


def test_a_fake_verifier_and_shadowing_tarfile_in_the_workspace_fail(tasks, tmp_path, v2):
    steps = [write("check_archive.py", "print('ok: 5 files')\n"),
             write("tarfile.py", "def open(*a, **k):\n    raise SystemExit(0)\n"),
             {"answer": "5"}]
    record, _ = play(tasks["shell-archive-src"], steps, v2, tmp_path)
    assert record.status == "failed"
    assert "backup.tar.gz is not in the workspace" in failed_checks(record)["command"]


def test_a_file_where_the_hidden_test_directory_goes_fails_not_harness_error(tasks, tmp_path, v2):
    """The reproduction of the issue: a *file* named `tests` on add-slugify."""
    record, _ = play(tasks["add-slugify"], [write("tests", "not a directory\n"), {"answer": "done"}], v2, tmp_path)
    assert record.status == "failed" and record.agent_status == "submitted"
    assert "expected 9 tests to pass" in failed_checks(record)["pytest"]


HIDDEN_DIR_TASK = """
id: hidden-dir
category: edit
difficulty: easy
instruction: Write answer.py with ANSWER = 42.
hidden:
  tests/test_answer.py: {from: fixtures/test_answer.py}
checks:
  - {type: command, run: "python -m pytest -q -p no:cacheprovider tests"}
"""


def test_a_blocked_hidden_copy_is_a_failed_check_with_its_reason(tmp_path, v2):
    """Tasks that still place hidden files in the workspace: the copy failing is scored."""
    suite = write_suite(tmp_path / "s", {"hidden-dir": HIDDEN_DIR_TASK},
                        {"test_answer.py": "from answer import ANSWER\n\ndef test():\n    assert ANSWER == 42\n"})
    steps = [write("answer.py", "ANSWER = 42\n"), write("tests", "in the way\n"), {"answer": "done"}]
    record, _ = play(suite.tasks[0], steps, v2, tmp_path)
    assert record.status == "failed"
    assert record.checks[0]["type"] == "hidden" and not record.checks[0]["passed"]
    assert "the hidden files could not be placed in the workspace" in record.checks[0]["detail"]


def test_a_fifo_in_a_watched_directory_fails_instead_of_hanging_the_check(tasks, tmp_path, v2):
    record, _ = play(tasks["make-tests-pass"], [shell("mkfifo tests/pipe"), {"answer": "done"}], v2, tmp_path)
    assert record.status == "failed"
    assert failed_checks(record)["unchanged"] == "tests changed: created pipe"


def test_a_check_that_crashes_on_what_the_agent_left_is_a_failed_check(tasks, tmp_path, v2, monkeypatch):
    from evals.checks import UnchangedCheck

    async def crash(self, ctx, baseline):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(UnchangedCheck, "evaluate", crash)
    record, _ = play(tasks["make-tests-pass"], [{"answer": "done"}], v2, tmp_path)
    assert record.status == "failed"
    assert failed_checks(record)["unchanged"] == "the check could not run: OSError: [Errno 5] Input/output error"


NON_CANONICAL_ROMAN = '''
_VALUES = [(1000, "M"), (900, "CM"), (500, "D"), (400, "CD"), (100, "C"), (90, "XC"), (50, "L"),
           (49, "IL"), (40, "XL"), (10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I")]


def to_roman(n):
    if type(n) is not int or not 1 <= n <= 3999:
        raise ValueError(n)
    out = ""
    for value, letters in _VALUES:
        count, n = divmod(n, value)
        out += letters * count
    return out


_TABLE = {}


def from_roman(s):
    if not _TABLE:
        _TABLE.update((to_roman(v), v) for v in range(1, 4000))
    if s not in _TABLE:
        raise ValueError(s)
    return _TABLE[s]
'''


def test_a_self_consistent_non_canonical_roman_fails(tasks, tmp_path, v2):
    """Round trip alone would pass this ("IL" for 49, read back as 49); the table does not."""
    record, _ = play(tasks["implement-roman"], [write("roman.py", NON_CANONICAL_ROMAN), {"answer": "done"}], v2, tmp_path)
    assert record.status == "failed"
    detail = failed_checks(record)["pytest"]
    assert "test_to_roman_writes_the_canonical_numeral_of_every_number" in detail
    assert "test_from_roman_rejects_every_other_string_of_up_to_five_letters" in detail


# ---- the credentials: a refusing endpoint is the harness's problem, found before any step ----


class _Refusing(BaseHTTPRequestHandler):
    list_models = False  # True: /models answers 200, only completions refuse

    def log_message(self, *args):
        pass

    def _send(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.list_models:
            return self._send(200, {"object": "list", "data": [{"id": "gpt", "object": "model"}]})
        self._send(401, {"error": {"message": "invalid api key"}})

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self._send(401, {"error": {"message": "invalid api key"}})


@pytest.fixture(params=[False, True], ids=["everything-401", "completions-401"])
def refusing_url(request):
    handler = type("Handler", (_Refusing,), {"list_models": request.param})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()
    server.server_close()


def test_a_401_endpoint_is_a_harness_error_before_the_first_step(tasks, tmp_path, v2, refusing_url, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong")
    suite = load_suite(ROOT / "tasks", only=["calc-product", "csv-top-customer"])
    model = EndpointModel(name="gpt", spec=f"gpt={refusing_url}", url=refusing_url)
    with Store(":memory:") as store:
        runner = Runner(store, tmp_path, RunOptions(retries=0))
        runs = runner.plan(suite, [model], [v2])
        asyncio.run(runner.execute(suite, [model], [v2], runs))
        results = store.results(runs[0].id)
    assert [r.status for r in results] == ["harness_error", "harness_error"]
    assert all("refused the credentials (HTTP 401" in r.error for r in results)
    assert not any(Path(r.trajectory_path).exists() for r in results)  # no agent ever started


def test_credentials_refused_mid_run_are_a_harness_error(tasks, tmp_path, v2):
    """A key revoked after the probe: the agent's run ends, and the attempt is not scored."""
    class Revoked(ScriptedModel):
        async def complete(self, messages, tools, **kw):
            if len(self.requests) >= 1:
                raise ModelError("http://x/v1 answered HTTP 403: key revoked", 403)
            return await super().complete(messages, tools, **kw)

    model = FuncModel(make=lambda t: Revoked([{"tool_calls": [{"name": "calculator", "arguments": {"expression": "1+1"}}]}]))
    attempt = Attempt("adv", tasks["calc-product"], model, v2, 1, tmp_path / "t.jsonl")
    with pytest.raises(HarnessError, match="refused the credentials: .*HTTP 403") as err:
        asyncio.run(run_attempt(attempt, harness_env()))
    assert err.value.model_down and not err.value.retryable


def test_an_agent_whose_own_tool_meets_a_401_is_scored(tasks, tmp_path, v2):
    """A 401 the agent meets through its tools is its observation, never the harness's error."""
    task = tasks["switch-rate-source"].model_copy(deep=True)
    task.faults[0].error = "401 Unauthorized: invalid API key"
    record, seen = play(task, [{"tool_calls": [{"name": "fx_rate", "arguments": {"pair": "EUR/JPY"}}]},
                               {"answer": "The rates service said 401 Unauthorized; I cannot convert."}], v2, tmp_path)
    assert "401 Unauthorized" in seen[-1]
    assert record.status == "failed"
