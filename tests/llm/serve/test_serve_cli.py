"""`llm serve` and `llm bench serve` as a user (or the eval harness) runs them: subprocesses."""

import json
import socket
import subprocess
import sys
import time

import httpx
from serve_testkit import free_port


def test_serve_starts_as_a_subprocess_and_answers_after_health(nano_ckpt):
    port = free_port()
    cmd = [sys.executable, "-m", "llm", "serve", "--model", str(nano_ckpt), "--port", str(port), "--threads", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "no healthy server within 120 s"
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        [card] = httpx.get(f"{url}/v1/models").json()["data"]
        assert card["id"] == str(nano_ckpt)  # the served name defaults to --model
        body = {"model": card["id"], "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
        r = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60)
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["role"] == "assistant"
    finally:
        proc.terminate()
        proc.wait(30)


def test_serve_with_a_bad_model_fails_in_one_line(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "llm", "serve", "--model", str(tmp_path / "missing"), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert r.returncode == 1 and len(lines) == 1 and "Traceback" not in r.stderr


def test_serve_on_a_taken_port_fails_in_one_line_before_loading(nano_ckpt):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = subprocess.run(
            [sys.executable, "-m", "llm", "serve", "--model", str(nano_ckpt), "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert r.returncode == 1 and r.stderr.strip().splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port} (Address already in use); choose another --port or --host"
    ]


def test_bench_serve_starts_a_server_and_reports_json(nano_ckpt):
    r = subprocess.run(
        [sys.executable, "-m", "llm", "bench", "serve", "--model", str(nano_ckpt), "--concurrency", "1,2",
         "--requests", "3", "--max-tokens", "4", "--json", "--server-arg=--threads=1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert [lvl["concurrency"] for lvl in report["levels"]] == [1, 2]
    for lvl in report["levels"]:
        assert lvl["errors"] == 0 and lvl["requests"] == 3
        assert 0 < lvl["generated_tokens"] <= 3 * 4 and lvl["ttft_p50_s"] is not None
        assert lvl["server_rss_mb"] > 0  # the command started the server, so it can read its memory


def test_bench_serve_agent_trace_runs_with_and_without_the_prefix_cache(nano_ckpt):
    r = subprocess.run(
        [sys.executable, "-m", "llm", "bench", "serve", "--model", str(nano_ckpt), "--agent-trace", "--conversations", "2",
         "--steps", "2", "--system-tokens", "60", "--max-tokens", "2", "--concurrency", "1,2", "--json",
         "--server-arg=--threads=1", "--server-arg=--block-size=8"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    runs = {(run["prefix_cache"], run["concurrency"]): run for run in report["runs"]}
    assert set(runs) == {(True, 1), (True, 2), (False, 1), (False, 2)}
    for (cache_on, _), run in runs.items():
        assert run["errors"] == 0 and run["conversations"] == 2 and len(run["ttft_by_step_s"]) == 2
        assert run["prompt_tokens_by_step"][1] > run["prompt_tokens_by_step"][0] > 0
        # Step 2 re-sends step 1's prompt: with the cache most of it is found, and nothing without.
        assert (run["hit_rate"] > 0.05) if cache_on else run["hit_rate"] == 0
    assert [c["concurrency"] for c in report["comparison"]] == [1, 2]
