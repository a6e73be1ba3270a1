import pytest

from iclaw.errors import IclawError
from iclaw.prompts import SUMMARY_MARKER
from iclaw.providers.scripted import ScriptedModel


@pytest.mark.anyio
async def test_replays_oracle_shaped_steps_then_repeats_last_answer():
    model = ScriptedModel([
        {"tool_calls": [{"name": "read_file", "arguments": {"path": "a"}}]},
        {"answer": "done"},
    ])
    first = await model.complete([{"role": "user", "content": "x"}], [])
    assert first.tool_calls[0].name == "read_file" and first.tool_calls[0].arguments == {"path": "a"}
    assert (await model.complete([], [])).content == "done"
    assert (await model.complete([], [])).content == "done"


@pytest.mark.anyio
async def test_summary_requests_do_not_consume_steps():
    model = ScriptedModel([{"answer": "final"}], summaries=["short summary"])
    summary = await model.complete([{"role": "system", "content": SUMMARY_MARKER + " summarise"}], [])
    assert summary.content == "short summary"
    declined = await model.complete([{"role": "system", "content": SUMMARY_MARKER}], [])
    assert declined.content == ""
    assert (await model.complete([], [])).content == "final"


def test_rejects_malformed_steps():
    with pytest.raises(IclawError, match="unknown keys"):
        ScriptedModel([{"anwser": "typo"}])
    with pytest.raises(IclawError, match="name"):
        ScriptedModel([{"tool_calls": [{"arguments": {}}]}])


@pytest.mark.anyio
async def test_callable_steps_see_the_prompt_and_stream_text():
    seen = []
    model = ScriptedModel([lambda messages, tools: {"answer": f"{len(messages)} messages"}])
    turn = await model.complete([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], [], on_text=seen.append)
    assert turn.content == "2 messages"
    assert "".join(seen).strip() == "2 messages"
