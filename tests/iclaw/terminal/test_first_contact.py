"""The terminal as a newcomer meets it: banner, endpoint check, /model, status line, footer, approval choices.

Driven through prompt-toolkit's pipe input against a fake OpenAI-compatible server
(`httpx.MockTransport`) or the scripted model; no real model runs.
"""

from __future__ import annotations

import json

import httpx
import pytest
from terminal_harness import Harness

from iclaw.providers import OpenAIChatModel, ScriptedModel


def fake_server(served: list[str], reply: str = "hello there"):
    """A handler for GET /v1/models and streamed chat completions (one chunk per word)."""
    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"object": "list", "data": [{"id": n, "object": "model"} for n in served]})
        asked.append(json.loads(request.content)["model"])
        chunks = [{"choices": [{"index": 0, "delta": {"content": w + " "}, "finish_reason": None}]} for w in reply.split()]
        chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 1390, "completion_tokens": 12}})
        body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
        return httpx.Response(200, content=body.encode(), headers={"content-type": "text/event-stream"})

    handler.asked = asked
    return handler


def openai_model(handler, name="tiny"):
    return OpenAIChatModel("http://fake.test/v1", name, transport=httpx.MockTransport(handler))


@pytest.mark.anyio
async def test_banner_names_model_url_workspace_profile_and_mode(workspace):
    h = Harness(workspace, openai_model(fake_server(["tiny"])), mode="ask")

    async def drive(pipe, app):
        await h.wait_for("Ctrl-D to leave")
        pipe.send_text("/exit\r")

    await h.run(drive)
    banner = h.text()
    for part in ("model tiny at http://fake.test/v1", f"workspace {workspace}", "profile v2", "mode ask"):
        assert part in banner


@pytest.mark.anyio
async def test_a_model_the_server_does_not_serve_is_reported_at_start_with_the_served_names(workspace):
    h = Harness(workspace, openai_model(fake_server(["tiny", "tiny-instruct"]), name="tiny-instrct"))
    await h.run(None, expect=1)
    text = h.text()
    assert "does not serve the model 'tiny-instrct'" in text and "did you mean tiny-instruct?" in text
    assert "it serves: tiny, tiny-instruct" in text and "Ctrl-D to leave" not in text


@pytest.mark.anyio
async def test_a_down_server_is_reported_at_start(workspace):
    def refuse(request):
        raise httpx.ConnectError("[Errno 111] Connection refused")

    h = Harness(workspace, openai_model(refuse))
    await h.run(None, expect=1)
    assert "cannot reach the model endpoint http://fake.test/v1/models" in h.text()


@pytest.mark.anyio
async def test_model_switch_is_validated_and_the_status_bar_follows(workspace):
    server = fake_server(["tiny", "tiny-instruct"])
    h = Harness(workspace, openai_model(server))
    bars: list[str] = []

    async def drive(pipe, app):
        mark = await h.wait_for("Ctrl-D to leave")
        pipe.send_text("/model nosuch-model\r")
        mark = await h.wait_for("it serves: tiny, tiny-instruct", mark)
        bars.append(app._toolbar())
        pipe.send_text("/model tiny-instruct\r")
        mark = await h.wait_for("model tiny-instruct at", mark)
        bars.append(app._toolbar())
        pipe.send_text("hi\r")
        await h.wait_for("hello there", mark)
        pipe.send_text("/exit\r")

    await h.run(drive)
    assert bars[0].startswith(" tiny |") and bars[1].startswith(" tiny-instruct |")
    assert server.asked == ["tiny-instruct"]  # the refused name was never sent


@pytest.mark.anyio
async def test_footer_after_each_turn(workspace):
    h = Harness(workspace, openai_model(fake_server(["tiny"])))
    await h.one_turn("0 tools")
    assert "1,390 in · 12 out · " in h.text()


@pytest.mark.anyio
async def test_status_line_shows_elapsed_phase_and_tokens_in_a_terminal(workspace):
    model = ScriptedModel([
        {"tool_calls": [{"name": "slow", "arguments": {}}], "delay_s": 0.6},
        {"answer": "all done now"},
    ])
    h = Harness(workspace, model, terminal=True, slow_s=1.0)

    async def drive(pipe, app):
        pipe.send_text("go\r")
        mark = await h.wait_for("· prefill ·")
        mark = await h.wait_for("· tool slow ·", mark)
        await h.wait_for("1 tool", mark)
        pipe.send_text("/exit\r")

    await h.run(drive)
    assert " s · tool slow · " in h.text() and " tokens" in h.text()


def _write_twice():
    return ScriptedModel([
        {"tool_calls": [{"name": "write_file", "arguments": {"path": "a.txt", "content": "one\n"}}]},
        {"tool_calls": [{"name": "write_file", "arguments": {"path": "b.txt", "content": "two\n"}}]},
        {"tool_calls": [{"name": "run_shell", "arguments": {"command": "wc -l a.txt"}}]},
        {"answer": "finished"},
    ])


@pytest.mark.anyio
async def test_always_allow_a_tool_for_the_session(workspace):
    h = Harness(workspace, _write_twice(), mode="ask")
    app = await h.dialog("write two files", ("[a] always allow write_file", "a"),
                         ("run_shell wants to run a command", "y"), ("finished", None))
    text = h.text()
    assert text.count("write_file wants to change") == 1  # the second write was not asked
    assert "wants to change the workspace" not in text and "$ wc -l a.txt" in text
    assert (workspace / "b.txt").read_text() == "two\n" and app.always_allowed == {"write_file"}


@pytest.mark.anyio
async def test_no_and_tell_the_model_why_is_a_decision_not_a_failure(workspace):
    model = _write_twice()
    h = Harness(workspace, model, mode="ask")
    app = await h.dialog("write two files", ("[t] no, and tell the model why", "t"), ("why not?", "use notes.md\r"),
                         ("write_file wants to change b.txt", "n"), ("run_shell wants", "y"), ("finished", None))
    tool_messages = [m["content"] for m in app.agent.transcript if m["role"] == "tool"]
    assert "use notes.md" in tool_messages[0] and "the user's decision" in tool_messages[0]
    assert not (workspace / "a.txt").exists() and not (workspace / "b.txt").exists()
    events = [e["type"] for e in app.agent.trajectory.events]
    assert "replan" not in events
    assert "declined by the user" in h.text()


@pytest.mark.anyio
async def test_a_resend_is_announced_with_a_retry_note(workspace):
    from iclaw.providers import RetryPolicy

    serve = fake_server(["tiny"])
    failures = [httpx.Response(503, json={"error": {"message": "busy"}})]

    def flaky(request):
        if request.method == "POST" and failures:
            return failures.pop(0)
        return serve(request)

    model = OpenAIChatModel("http://fake.test/v1", "tiny", transport=httpx.MockTransport(flaky),
                            retry=RetryPolicy(max_retries=4, base_delay_s=0.01))
    h = Harness(workspace, model)
    await h.one_turn("hello there")
    assert "endpoint answered HTTP 503, retry 1/4 in 0.01 s" in h.text()


def test_approval_titles_follow_the_action():
    from iclaw.terminal.render import approval_title

    assert approval_title("write_file", "write", "notes.txt") == "write_file wants to change notes.txt"
    assert approval_title("run_shell", "exec", "wc -l a.txt") == "run_shell wants to run a command"
    assert approval_title("run_python", "exec", "print(1)") == "run_python wants to run Python code"
    assert approval_title("http_get", "net", "https://x.test/") == "http_get wants to fetch https://x.test/"
    assert approval_title("notes.delete", "write", '{"name": "n1"}') == "notes.delete wants to make a change"
    assert approval_title("notes.add", "exec", '{"name": "n1"}') == "notes.add wants to run"
