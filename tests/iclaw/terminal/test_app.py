"""The interactive terminal driven through prompt-toolkit's pipe input: turns, slash commands, Ctrl-C."""

from __future__ import annotations

import pytest
from prompt_toolkit.document import Document
from terminal_harness import Harness

from iclaw.providers import ScriptedModel
from iclaw.session import load_session
from iclaw.terminal.app import _SlashCompleter


@pytest.mark.anyio
async def test_a_turn_a_slash_command_and_ctrl_c_cancelling_a_turn(workspace):
    (workspace / "a.txt").write_text("hello from a")
    h = Harness(workspace, ScriptedModel([
        {"tool_calls": [{"name": "read_file", "arguments": {"path": "a.txt"}}]},
        {"answer": "The file says hello."},
        {"tool_calls": [{"name": "slow", "arguments": {}}]},
        {"answer": "after the cancel"},
    ]))

    async def drive(pipe, app):
        pipe.send_text("what is in a.txt?\r")
        mark = await h.wait_for("The file says hello.")
        mark = await h.wait_for("context", mark)
        pipe.send_text("/tools\r")
        mark = await h.wait_for("sandbox:", mark)
        pipe.send_text("do the slow thing\r")
        mark = await h.wait_for("slow", mark)  # the tool panel: the turn is running
        pipe.send_text("\x03")
        mark = await h.wait_for("turn cancelled", mark)
        pipe.send_text("and now?\r")
        mark = await h.wait_for("after the cancel", mark)
        pipe.send_text("/exit\r")

    app = await h.run(drive)
    text = h.text()
    assert "read_file -> ok" in text and "hello from a" in text
    assert "calculator" in text  # /tools listed the registry
    # The session survived the cancel: the cancelled call got a result and the next turn ran.
    messages = app.agent.transcript
    cancelled = [m for m in messages if m["role"] == "tool" and "cancelled" in m["content"]]
    assert len(cancelled) == 1
    assert messages[-1] == {"role": "assistant", "content": "after the cancel"}


@pytest.mark.anyio
async def test_sessions_are_saved_and_resumable(workspace):
    h = Harness(workspace, ScriptedModel([{"answer": "first answer"}]))

    async def drive(pipe, app):
        pipe.send_text("Remember: the build id is B-7781.\r")
        await h.wait_for("first answer")
        pipe.send_text("/exit\r")

    app = await h.run(drive)
    session = load_session(app.session_id)
    assert any(m["content"] == "first answer" for m in session.transcript)

    h2 = Harness(workspace, ScriptedModel([{"answer": "second answer"}]))

    async def drive2(pipe, app):
        pipe.send_text("/memory\r")
        await h2.wait_for("B-7781")
        pipe.send_text("/exit\r")

    resumed = await h2.run(drive2, session=load_session(app.session_id))
    assert resumed.session_id == app.session_id
    assert "Key facts" in h2.text()


@pytest.mark.anyio
async def test_ask_mode_shows_the_diff_and_waits_for_y(workspace):
    (workspace / "cfg.txt").write_text("debug = false\n")
    h = Harness(workspace, ScriptedModel([
        {"tool_calls": [{"name": "edit_file", "arguments": {"path": "cfg.txt", "search": "false", "replace": "true"}}]},
        {"answer": "enabled"},
    ]), mode="ask")

    async def drive(pipe, app):
        pipe.send_text("turn debug on\r")
        await h.wait_for("[t] no, and tell the model why")
        pipe.send_text("y")
        await h.wait_for("enabled")
        pipe.send_text("/exit\r")

    await h.run(drive)
    text = h.text()
    assert "edit_file wants to change cfg.txt" in text
    assert "+debug = true" in text and "allowed" in text
    # The change is shown once, in the question: no JSON panel repeating the arguments.
    assert text.count('"replace"') == 0 and text.count("+debug = true") == 1
    assert (workspace / "cfg.txt").read_text() == "debug = true\n"


@pytest.mark.anyio
async def test_unknown_command_and_clear(workspace):
    h = Harness(workspace, ScriptedModel([{"answer": "x"}]))

    async def drive(pipe, app):
        pipe.send_text("/frobnicate\r")
        await h.wait_for("unknown command")
        pipe.send_text("/clear\r")
        await h.wait_for("new conversation")
        pipe.send_text("/help\r")
        await h.wait_for("/compact")
        pipe.send_text("/exit\r")

    await h.run(drive)


def test_slash_commands_complete():
    completer = _SlashCompleter()
    names = [c.text for c in completer.get_completions(Document("/co"), None)]
    assert names == ["/compact"]
    assert list(completer.get_completions(Document("hello /co"), None)) == []
