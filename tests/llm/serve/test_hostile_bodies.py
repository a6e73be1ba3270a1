"""Hostile requests: oversized bodies get 413, requests that can never fit get 400, and slow
tokenization never stalls the event loop (other routes keep answering meanwhile)."""

from __future__ import annotations

import threading

import httpx
import pytest
from serve_testkit import running_server

LIMIT_MB = 0.05  # about 51 KiB


@pytest.fixture(scope="module")
def small_server(nano):
    with running_server(nano, max_body_mb=LIMIT_MB, max_batch=1, max_queue=4, kv_blocks=64, block_size=8) as s:
        yield s


def _is_openai_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"] and "type" in error
    return error


def test_a_body_over_the_limit_gets_413_declared_or_chunked(small_server):
    url, _ = small_server
    big = {"model": "nano", "prompt": "x" * 200_000, "max_tokens": 1}
    error = _is_openai_error(httpx.post(f"{url}/v1/completions", json=big), 413, "request_too_large")
    assert "--max-body-mb" in error["message"] and error["type"] == "invalid_request_error"

    def chunks():  # no Content-Length: the limit is counted as the body arrives
        yield b'{"model": "nano", "prompt": "'
        for _ in range(100):
            yield b"y" * 1024
        yield b'"}'

    chunked = httpx.post(f"{url}/v1/completions", content=chunks(), headers={"Content-Type": "application/json"})
    _is_openai_error(chunked, 413, "request_too_large")
    assert httpx.get(f"{url}/health").status_code == 200
    small = httpx.post(f"{url}/v1/completions", json={"model": "nano", "prompt": "hi", "max_tokens": 2})
    assert small.status_code == 200


def test_a_request_that_can_never_fit_is_a_400_not_a_429(small_server):
    url, engine = small_server
    many = {"model": "nano", "prompt": ["hi"] * 3, "max_tokens": 2, "n": 2}  # 6 sequences, capacity 5
    error = _is_openai_error(httpx.post(f"{url}/v1/completions", json=many), 400, "request_too_large")
    assert f"at most {engine.capacity}" in error["message"]
    chat = {"model": "nano", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "n": 8}
    _is_openai_error(httpx.post(f"{url}/v1/chat/completions", json=chat), 400, "request_too_large")


def test_text_that_cannot_fit_is_refused_before_it_is_tokenized(small_server, nano, monkeypatch):
    url, _ = small_server

    def refuse(text):
        raise AssertionError(f"tokenized {len(text)} characters that could never fit")

    monkeypatch.setattr(nano.tokenizer, "encode", refuse)
    monkeypatch.setattr(nano.tokenizer, "encode_with_special", refuse)
    text = "z" * 40_000  # under the body limit, far over the context in any tokenization
    chat = {"model": "nano", "messages": [{"role": "user", "content": text}], "max_tokens": 2}
    error = _is_openai_error(httpx.post(f"{url}/v1/chat/completions", json=chat), 400, "context_length_exceeded")
    assert "at least" in error["message"]
    plain = {"model": "nano", "prompt": text, "max_tokens": 2}
    _is_openai_error(httpx.post(f"{url}/v1/completions", json=plain), 400, "context_length_exceeded")


def test_slow_tokenization_does_not_stall_other_requests(small_server, nano, monkeypatch):
    url, _ = small_server
    entered, release = threading.Event(), threading.Event()
    encode = nano.tokenizer.encode

    def slow_encode(text):
        entered.set()
        release.wait(30)
        return encode(text)

    monkeypatch.setattr(nano.tokenizer, "encode", slow_encode)
    result = {}
    worker = threading.Thread(
        target=lambda: result.setdefault("r", httpx.post(f"{url}/tokenize", json={"prompt": "hello"}, timeout=60))
    )
    worker.start()
    try:
        assert entered.wait(30), "the tokenize request never reached the tokenizer"
        # The tokenizer is blocked; were it on the event loop, nothing else could be answered now.
        assert httpx.get(f"{url}/health", timeout=20).status_code == 200
        assert httpx.get(f"{url}/v1/models", timeout=20).status_code == 200
        assert "r" not in result
    finally:
        release.set()
        worker.join(60)
    assert result["r"].status_code == 200 and result["r"].json()["count"] > 0


def test_the_hostile_bench_reports_refusals_and_health(small_server, capsys):
    from llm.serve.bench_hostile import HostileConfig, run_hostile

    url, _ = small_server
    report = run_hostile(HostileConfig(url=url, body_mb=0.2, text_mb=0.04, streams=2, max_tokens=4), json_out=True)
    statuses = {name: r["status"] for name, r in report["hostile"].items()}
    assert statuses == {"oversized chat": 413, "big tokenize": 200, "big chat": 400}
    assert report["health_polls"] >= 1 and report["health_p99_ms"] is not None
    assert report["rss_before_mb"] is None  # a server it did not start: no RSS
    assert '"health_p99_ms"' in capsys.readouterr().out
