"""`llm serve` logs one line per finished request: id, tokens, time to first token, total, finish reason."""

import logging
import re
import subprocess
import sys

import httpx
import pytest
from serve_testkit import free_port

from llm.serve.request_log import RequestLog, configure_logging, server_logger
from llm.serve.sequence import SequenceOutput

LINE = re.compile(
    r"id=(?P<id>\S+) prompt_tokens=(?P<prompt>\d+) cached_tokens=\d+ completion_tokens=(?P<completion>\d+) "
    r"ttft=(?P<ttft>[\d.]+s|-) total=[\d.]+s finish=(?P<finish>\S+)$"
)


@pytest.fixture
def request_lines(caplog):
    caplog.set_level(logging.INFO, logger="llm.serve.requests")
    return lambda: [r.getMessage() for r in caplog.records if r.name == "llm.serve.requests"]


def test_one_line_per_chat_request_with_the_response_id_and_usage(server, request_lines):
    url, _ = server
    body = {"model": "nano", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
    reply = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60).json()
    [line] = request_lines()
    m = LINE.match(line)
    assert m, line
    assert m["id"] == reply["id"]
    assert int(m["prompt"]) == reply["usage"]["prompt_tokens"]
    assert int(m["completion"]) == reply["usage"]["completion_tokens"]
    assert m["finish"] in ("stop", "length") and m["ttft"] != "-"


def test_streamed_and_text_completions_log_once_each(server, request_lines):
    url, _ = server
    chat = {"model": "nano", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "stream": True}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=chat, timeout=60) as r:
        assert r.status_code == 200 and list(r.iter_lines())
    text = {"model": "nano", "prompt": ["a b", "c d"], "max_tokens": 2, "n": 2}
    reply = httpx.post(f"{url}/v1/completions", json=text, timeout=60).json()
    lines = request_lines()
    assert len(lines) == 2 and lines[0].startswith("id=chatcmpl-")
    m = LINE.match(lines[1])
    assert m and m["id"] == reply["id"] and int(m["completion"]) == reply["usage"]["completion_tokens"] == 8
    assert m["finish"] == "length"


def test_a_request_whose_client_left_logs_abort_once():
    log = RequestLog("chatcmpl-x", prompt_tokens=5)
    log.add(SequenceOutput(seq_id=1, index=0, token_ids=[7], text="a", logprobs=[], finished=False))
    log.write(open_choices=1)
    log.write()
    m = LINE.match(log.line(open_choices=1))
    assert m and m["finish"] == "abort" and m["prompt"] == "5" and m["ttft"] != "-"


@pytest.fixture
def restored_loggers():
    yield
    server_logger.handlers.clear()
    server_logger.setLevel(logging.NOTSET)
    server_logger.propagate = True


def test_quiet_and_log_level_set_the_server_loggers(restored_loggers):
    configure_logging("debug")
    assert server_logger.getEffectiveLevel() == logging.DEBUG
    configure_logging("info", quiet=True)
    assert not logging.getLogger("llm.serve.requests").isEnabledFor(logging.INFO)
    configure_logging("info")
    assert logging.getLogger("llm.serve.requests").isEnabledFor(logging.INFO)


def test_serve_subprocess_prints_a_request_line_and_quiet_prints_none(nano_ckpt):
    for extra, expect_line in (([], True), (["--quiet"], False)):
        port = free_port()
        cmd = [sys.executable, "-m", "llm", "serve", "--model", str(nano_ckpt), "--served-model-name", "nano",
               "--port", str(port), "--threads", "1", *extra]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            _wait_healthy(f"http://127.0.0.1:{port}", proc)
            body = {"model": "nano", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
            assert httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body, timeout=60).status_code == 200
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=30)
        lines = [line for line in err.splitlines() if " id=chatcmpl-" in line]
        assert len(lines) == (1 if expect_line else 0), err
        assert ("serving 'nano'" in err) == expect_line


def _wait_healthy(url, proc, timeout=120):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError("no healthy server")
