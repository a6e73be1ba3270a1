"""Start / wait / stop of the model server for `NAME=ckpt:PATH` model versions.

Most tests drive a *stand-in* HTTP server (a few lines of stdlib, written below) through
the same code path the harness uses for `llm serve`: same arguments (`--model PATH --port
N`), same `/health` wait, same stop. The stand-in is not the real server; the test that
starts the real `llm serve` is `test_real_llm_serve_for_a_checkpoint` (skipped when the
server module or the SmolLM2 checkpoint is unavailable).
"""

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from evals_testkit import write_suite

from evals.errors import HarnessError
from evals.runner import RunOptions, Runner
from evals.server import LLM_SERVE, LlmServer
from evals.store import Store
from evals.versions import CheckpointModel, parse_model_specs

STAND_IN = textwrap.dedent('''
    """Stand-in for `llm serve` in tests: /health and a canned /v1/chat/completions."""
    import argparse, json, signal, sys, time
    from http.server import BaseHTTPRequestHandler, HTTPServer
    from pathlib import Path

    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    ckpt = Path(args.model)
    behaviour = json.loads((ckpt / "behaviour.json").read_text())
    print(f"stand-in for {ckpt} on port {args.port}", flush=True)
    if behaviour.get("exit_code") is not None:
        print(behaviour.get("message", "failing"), flush=True)
        sys.exit(behaviour["exit_code"])
    if behaviour.get("ignore_sigterm"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(behaviour.get("delay_s", 0))

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def _send(self, code, body):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/health":
                self._send(behaviour.get("health", 200), {"status": "ok"})
            elif self.path == "/v1/models":
                self._send(200, {"object": "list", "data": [{"id": "stand-in-model", "object": "model"}]})
            else:
                self._send(404, {"error": "not found"})

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
            if body.get("model") != "stand-in-model":  # like llm serve: only the served name
                return self._send(404, {"error": {"message": f"no model {body.get('model')!r}"}})
            answer = (ckpt / "answer.txt").read_text()
            self._send(200, {"choices": [{"index": 0, "finish_reason": "stop",
                                          "message": {"role": "assistant", "content": answer}}]})

    HTTPServer(("127.0.0.1", args.port), Handler).serve_forever()
''')


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still "exists"; it is gone for our purposes once reaped
    try:
        return Path(f"/proc/{pid}/status").read_text().find("zombie") < 0
    except OSError:
        return False


@pytest.fixture
def stand_in(tmp_path):
    script = tmp_path / "stand_in_server.py"
    script.write_text(STAND_IN)

    def make_ckpt(name: str = "ckpt", answer: str = "Paris", **behaviour) -> Path:
        ckpt = tmp_path / name
        ckpt.mkdir()
        (ckpt / "behaviour.json").write_text(json.dumps(behaviour))
        (ckpt / "answer.txt").write_text(answer)
        return ckpt

    return [sys.executable, str(script)], make_ckpt


def test_start_waits_for_health_and_stop_ends_the_process(tmp_path, stand_in):
    command, make_ckpt = stand_in
    ckpt = make_ckpt(delay_s=0.5)  # not listening for the first half second
    server = LlmServer(ckpt, tmp_path / "logs" / "server.log", command=command, startup_timeout_s=20)

    async def go():
        import httpx

        async with server:
            pid = server.process.pid
            async with httpx.AsyncClient() as client:
                health = (await client.get(server.health_url)).status_code
            assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
        return pid, health

    pid, health = asyncio.run(go())
    assert health == 200
    assert not alive(pid)
    assert f"stand-in for {ckpt} on port {server.port}" in (tmp_path / "logs" / "server.log").read_text()


def test_server_that_exits_is_a_harness_error_with_its_log(tmp_path, stand_in):
    command, make_ckpt = stand_in
    server = LlmServer(make_ckpt(exit_code=3, message="cannot load checkpoint"), tmp_path / "s.log", command=command)
    with pytest.raises(HarnessError, match=r"exited with code 3 .*cannot load checkpoint"):
        asyncio.run(server.start())


def test_server_never_healthy_times_out_and_is_stopped(tmp_path, stand_in):
    command, make_ckpt = stand_in
    server = LlmServer(make_ckpt(health=503), tmp_path / "s.log", command=command, startup_timeout_s=1.0)

    with pytest.raises(HarnessError, match=r"not healthy at http://127\.0\.0\.1:\d+/health after 1s"):
        asyncio.run(server.start())
    assert server.process is None  # stop() ran and forgot it


def test_stop_escalates_to_sigkill(tmp_path, stand_in):
    command, make_ckpt = stand_in
    server = LlmServer(make_ckpt(ignore_sigterm=True), tmp_path / "s.log", command=command, stop_timeout_s=0.5)

    async def go():
        await server.start()
        pid = server.process.pid
        await server.stop()
        return pid

    assert not alive(asyncio.run(go()))


TASK = """
id: capital-task
category: qa
difficulty: easy
instruction: What is the capital of France? One word.
tools: [calculator]
limits: {max_steps: 3, wall_time_s: 180}
checks:
  - {type: answer, contains: Paris}
"""


def run_capital_task(tmp_path, model, agent):
    """One-task suite through the runner; returns (run, its one result)."""
    suite = write_suite(tmp_path / "suite", {"capital-task": TASK})
    with Store(tmp_path / "e.db") as store:
        runner = Runner(store, tmp_path / "out", RunOptions())
        runs = runner.plan(suite, [model], [agent])
        asyncio.run(runner.execute(suite, [model], [agent], runs))
        (result,) = store.results(runs[0].id)
    return runs[0], result


def test_ckpt_model_version_runs_the_suite_through_its_server(tmp_path, stand_in, v2):
    command, make_ckpt = stand_in
    ckpt = make_ckpt(answer="Paris")
    (model,) = parse_model_specs([f"mini=ckpt:{ckpt}"])
    assert isinstance(model, CheckpointModel) and model.path == ckpt.resolve()
    model.command = command  # the stand-in instead of `python -m llm serve`
    run, result = run_capital_task(tmp_path, model, v2)
    assert result.status == "passed" and result.answer == "Paris"
    assert model.served_name == "stand-in-model"  # requests use the name the server lists
    assert model.server.process is None  # stopped after the model's attempts
    logs = list((tmp_path / "out" / "evals" / run.batch).glob("server-*.log"))
    assert [p.name for p in logs] == ["server-mini.log"]


def test_endpoint_that_does_not_serve_the_name_is_a_harness_error(tmp_path, stand_in):
    command, make_ckpt = stand_in
    server = LlmServer(make_ckpt(), tmp_path / "s.log", command=command)

    async def go():
        async with server:
            (right,) = parse_model_specs([f"stand-in-model={server.base_url}"])
            await right.start(tmp_path)  # listed: fine
            (wrong,) = parse_model_specs([f"gpt-9={server.base_url}"])
            with pytest.raises(HarnessError, match=r"does not serve a model named 'gpt-9' \(it serves: stand-in-model\)"):
                await wrong.start(tmp_path)

    asyncio.run(go())


def test_ckpt_server_that_cannot_start_marks_its_attempts_as_harness_errors(tmp_path, stand_in, v2):
    command, make_ckpt = stand_in
    (model,) = parse_model_specs([f"broken=ckpt:{make_ckpt(exit_code=1, message='bad weights')}"])
    model.command = command
    run, result = run_capital_task(tmp_path, model, v2)
    assert result.status == "harness_error" and "unavailable" in result.error and "bad weights" in result.error


@pytest.mark.model
def test_real_llm_serve_for_a_checkpoint(tmp_path, smollm2_path, v2):
    """The real `python -m llm serve --model PATH --port N` for SmolLM2, started and stopped by the harness."""
    probe = subprocess.run([*LLM_SERVE, "--help"], capture_output=True, text=True, timeout=120)
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        pytest.skip(f"`llm serve` is not available in this checkout ({last})")
    (model,) = parse_model_specs([f"smol=ckpt:{smollm2_path}"])
    run, result = run_capital_task(tmp_path, model, v2)
    assert result.status in ("passed", "failed"), result.error  # the server answered: not a harness error
    assert model.server.process is None
