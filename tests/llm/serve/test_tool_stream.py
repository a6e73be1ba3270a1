"""Tool-call splitting of streamed text: the deltas must add up to the one-shot parse."""

import random

import pytest

from llm.chat_template import parse_tool_calls
from llm.serve.tool_stream import ContentDelta, ToolCallEvent, ToolCallStream


CALL = '<tool_call>{"name": "calc", "arguments": {"expression": "1+2"}}</tool_call>'
TRICKY = '<tool_call>{"name": "echo", "arguments": {"text": "a </tool_call> b"}}</tool_call>'


@pytest.mark.parametrize(
    "text",
    [
        "Just prose, no tools.",
        CALL,
        f"Let me compute.\n{CALL}\n{CALL}",
        f"  {CALL}\n\nDone <tool but not a call.",
        '<tool_call>{"name": "calc", "arguments": {broken}</tool_call> after',
        TRICKY,
        "<tool_call>never closed",
    ],
)
def test_streamed_split_matches_one_shot_parse(text):
    want_content, want_calls = parse_tool_calls(text)
    rng = random.Random(0)
    for _ in range(20):
        parser, events, pos = ToolCallStream(), [], 0
        while pos < len(text):
            step = rng.randint(1, 7)
            events += parser.push(text[pos : pos + step])
            pos += step
        events += parser.finish()
        content = "".join(e.text for e in events if isinstance(e, ContentDelta))
        calls = [e.call for e in events if isinstance(e, ToolCallEvent)]
        assert [(c.name, c.arguments) for c in calls] == [(c.name, c.arguments) for c in want_calls]
        assert [e.index for e in events if isinstance(e, ToolCallEvent)] == list(range(len(calls)))
        assert content.strip() == want_content


def test_prose_is_released_before_the_reply_ends():
    parser = ToolCallStream()
    assert [e.text for e in parser.push("Hello there, ")] == ["Hello there,"]
    assert [e.text for e in parser.push("friend <tool")] == [" friend"]  # "<tool" might open a call
    events = parser.push('_call>{"name": "f", "arguments": {}}</tool_call>')
    assert [type(e) for e in events] == [ToolCallEvent] and events[0].call.name == "f"


def test_chat_stream_deltas_number_several_calls_in_one_turn():
    from llm.serve.chat import _deltas
    from llm.serve.sequence import SequenceOutput

    text = f"Two calls.\n{CALL}\n{CALL.replace('calc', 'other')}"
    parser = ToolCallStream()
    deltas = _deltas(parser, SequenceOutput(0, 0, [], text, [], finished=True, finish_reason="stop"), single_call=False)
    heads = [d.tool_calls[0] for d in deltas if d.tool_calls and d.tool_calls[0].id]
    assert [(h.index, h.function.name) for h in heads] == [(0, "calc"), (1, "other")]
    assert len({h.id for h in heads}) == 2 and deltas[0].content == "Two calls."
    only_first = _deltas(ToolCallStream(), SequenceOutput(0, 0, [], text, [], True, "stop"), single_call=True)
    assert [d.tool_calls[0].index for d in only_first if d.tool_calls] == [0, 0]
