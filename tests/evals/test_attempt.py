import asyncio
import json
import threading
from pathlib import Path

import pytest
from iclaw.providers import ScriptedModel

from evals.attempt import AgentHung, Attempt, run_attempt, run_isolated
from evals.errors import HarnessError
from evals.shell import harness_env
from evals.transcript import read_events

from evals_testkit import FuncModel, write_suite


def attempt_for(task, model, agent, tmp_path: Path) -> Attempt:
    return Attempt("run-1", task, model, agent, 1, tmp_path / "traj" / f"{task.id}.jsonl")


def last_tool_output(messages: list[dict]) -> str:
    return [m for m in messages if m["role"] == "tool"][-1]["content"]


HIDDEN_TASK = """
id: hidden-task
category: files
difficulty: easy
instruction: List every file.
workspace:
  files:
    visible.txt: "hello"
hidden:
  tests/test_secret.py: {from: fixtures/test_secret.py}
checks:
  - {type: file, path: tests/test_secret.py, contains: SECRET_MARKER}
  - {type: answer, contains: visible.txt}
"""


def test_hidden_files_are_invisible_to_the_agent_and_present_for_checks(tmp_path, v2):
    suite = write_suite(tmp_path / "suite", {"hidden-task": HIDDEN_TASK}, {"test_secret.py": "# SECRET_MARKER\n"})
    seen = {}

    def report(messages, tools):
        seen["listing"] = last_tool_output(messages)
        return {"answer": seen["listing"]}

    steps = [
        {"tool_calls": [{"name": "list_dir", "arguments": {"path": ".", "depth": 4}}]},
        {"tool_calls": [{"name": "glob", "arguments": {"pattern": "**/*"}}]},
        report,
    ]
    model = FuncModel(make=lambda task: ScriptedModel(steps))
    record = asyncio.run(run_attempt(attempt_for(suite.tasks[0], model, v2, tmp_path), harness_env()))
    assert "visible.txt" in seen["listing"]
    assert "secret" not in seen["listing"] and "tests" not in seen["listing"]
    assert record.status == "passed", record.checks
    assert [c["passed"] for c in record.checks] == [True, True]


SETUP_TASK = """
id: setup-task
category: shell
difficulty: easy
instruction: What does generated.txt say?
workspace:
  setup: "{setup}"
checks:
  - {{type: answer, contains: generated}}
"""


def test_setup_runs_before_the_agent(tmp_path, v1):
    suite = write_suite(tmp_path / "s", {"setup-task": SETUP_TASK.format(setup="echo generated > generated.txt")})

    def answer(messages, tools):
        return {"answer": last_tool_output(messages)}

    steps = [{"tool_calls": [{"name": "read_file", "arguments": {"path": "generated.txt"}}]}, answer]
    record = asyncio.run(run_attempt(attempt_for(suite.tasks[0], FuncModel(make=lambda t: ScriptedModel(steps)), v1, tmp_path), harness_env()))
    assert record.status == "passed"


def test_failed_setup_is_a_harness_error_not_a_failure(tmp_path, v1):
    suite = write_suite(tmp_path / "s", {"setup-task": SETUP_TASK.format(setup="echo cannot build >&2; exit 4")})
    model = FuncModel()
    with pytest.raises(HarnessError, match=r"setup of task 'setup-task' failed \(exit 4\): cannot build"):
        asyncio.run(run_attempt(attempt_for(suite.tasks[0], model, v1, tmp_path), harness_env()))
    assert model.calls == []  # the agent never started


MOCK_TASK = """
id: mock-task
category: recovery
difficulty: easy
instruction: Weather in Oslo and Cairo?
tools: [calculator]
mock_tools:
  - name: get_weather
    description: Current weather for a city.
    parameters: {type: object, properties: {city: {type: string}}, required: [city]}
    latency_s: 0.05
    responses: {Oslo: "24C sunny", Cairo: "19C dust"}
    default: "unknown city"
faults:
  - {tool: get_weather, calls: [1], error: "EIO: temporary failure"}
checks:
  - {type: answer, contains: ["24C sunny", "19C dust", "unknown city"]}
"""


def test_mock_tools_and_injected_faults_reach_the_agent(tmp_path, v1):
    suite = write_suite(tmp_path / "s", {"mock-task": MOCK_TASK})
    outputs = []

    def collect(messages, tools):
        outputs.append(last_tool_output(messages))
        return {"tool_calls": [{"name": "get_weather", "arguments": {"city": ["Oslo", "Cairo", "Atlantis"][len(outputs) - 1]}}]}

    def finish(messages, tools):
        outputs.append(last_tool_output(messages))
        return {"answer": " | ".join(outputs)}

    steps = [{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}, collect, collect, collect, finish]
    record = asyncio.run(run_attempt(attempt_for(suite.tasks[0], FuncModel(make=lambda t: ScriptedModel(steps)), v1, tmp_path), harness_env()))
    assert "EIO: temporary failure" in outputs[0]  # call 1 failed (v1 passes errors back verbatim)
    assert outputs[1:] == ["24C sunny", "19C dust", "unknown city"]
    assert record.status == "passed"
    assert record.tool_calls == 4
    events = read_events(Path(record.trajectory_path))
    assert events[0]["type"] == "meta" and "get_weather" in events[0]["tools"]


def test_run_isolated_returns_raises_and_gives_up_on_a_blocked_loop():
    release, returned = threading.Event(), threading.Event()

    async def ok():
        return 42

    async def crash():
        raise RuntimeError("inner crash")

    async def blocked():
        release.wait(60)  # a blocking call: no in-loop timeout could interrupt this
        returned.set()
        return "late"

    async def main():
        assert await run_isolated(ok, 5) == 42
        with pytest.raises(RuntimeError, match="inner crash"):
            await run_isolated(crash, 5)
        with pytest.raises(AgentHung):
            await run_isolated(blocked, 0.2)
        # The harness stopped waiting while the call was still blocked (an event, not a clock).
        assert not returned.is_set()

    asyncio.run(main())
    release.set()
    assert returned.wait(10)  # the abandoned thread ends once its call returns


def test_trajectory_is_jsonl_with_messages(tmp_path, v2):
    suite = write_suite(tmp_path / "s", {"mock-task": MOCK_TASK})
    steps = [{"tool_calls": [{"name": "calculator", "arguments": {"expression": "2+2"}}]}, {"answer": "4"}]
    record = asyncio.run(run_attempt(attempt_for(suite.tasks[0], FuncModel(make=lambda t: ScriptedModel(steps)), v2, tmp_path), harness_env()))
    lines = Path(record.trajectory_path).read_text().splitlines()
    types = [json.loads(line)["type"] for line in lines]
    assert types[0] == "meta" and "end" in types
    roles = [json.loads(line)["message"]["role"] for line in lines if json.loads(line)["type"] == "message"]
    assert roles == ["user", "assistant", "tool", "assistant"]
    assert record.status == "failed" and record.answer == "4"


def test_run_isolated_stops_the_agent_when_the_harness_is_cancelled():
    """Ctrl-C or SIGTERM cancels the harness: the agent's own loop is cancelled too, so its
    worker thread ends instead of holding the process at exit."""
    started, stopped = threading.Event(), threading.Event()

    async def waits_a_minute():
        started.set()
        try:
            await asyncio.sleep(60)
        finally:
            stopped.set()

    async def main():
        isolated = asyncio.ensure_future(run_isolated(waits_a_minute, 120))
        while not started.is_set():
            await asyncio.sleep(0.01)
        isolated.cancel()
        with pytest.raises(asyncio.CancelledError):
            await isolated

    asyncio.run(main())
    assert stopped.wait(10)
