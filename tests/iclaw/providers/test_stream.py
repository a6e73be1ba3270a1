"""Tool-call delta assembly, including what local servers do differently from OpenAI."""

from iclaw.providers.stream import StreamAssembler


def _chunk(delta=None, finish=None, usage=None):
    chunk = {"choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}]}
    if usage:
        chunk["usage"] = usage
    return chunk


def _call(index, id=None, name=None, args=None):
    fn = {}
    if name is not None:
        fn["name"] = name
    if args is not None:
        fn["arguments"] = args
    out = {"index": index, "function": fn}
    if id is not None:
        out["id"] = id
        out["type"] = "function"
    return out


def test_openai_shape_two_parallel_calls_with_fragments():
    a = StreamAssembler()
    a.feed(_chunk({"role": "assistant", "content": None}))
    a.feed(_chunk({"tool_calls": [_call(0, "call_a", "read_file", "")]}))
    a.feed(_chunk({"tool_calls": [_call(0, args='{"pa')]}))
    a.feed(_chunk({"tool_calls": [_call(0, args='th": "x.txt"}')]}))
    a.feed(_chunk({"tool_calls": [_call(1, "call_b", "calculator", '{"expression"')]}))
    a.feed(_chunk({"tool_calls": [_call(1, args=': "1+2"}')]}))
    a.feed(_chunk(finish="tool_calls"))
    a.feed({"choices": [], "usage": {"prompt_tokens": 40, "completion_tokens": 12}})
    turn = a.finish()
    assert [(c.id, c.name, c.arguments) for c in turn.tool_calls] == [
        ("call_a", "read_file", {"path": "x.txt"}),
        ("call_b", "calculator", {"expression": "1+2"}),
    ]
    assert turn.finish_reason == "tool_calls"
    assert (turn.tokens_in, turn.tokens_out) == (40, 12)
    assert turn.content is None


def test_reused_index_zero_with_new_ids_starts_new_calls():
    a = StreamAssembler()
    a.feed(_chunk({"tool_calls": [_call(0, "c1", "get_weather", '{"city": "Paris"}')]}))
    a.feed(_chunk({"tool_calls": [_call(0, "c2", "get_weather", '{"city": ')]}))
    a.feed(_chunk({"tool_calls": [_call(0, args='"Oslo"}')]}))
    turn = a.finish()
    assert [(c.id, c.arguments["city"]) for c in turn.tool_calls] == [("c1", "Paris"), ("c2", "Oslo")]


def test_reused_index_zero_without_ids_splits_on_name_after_complete_arguments():
    a = StreamAssembler()
    a.feed(_chunk({"tool_calls": [_call(0, name="get_weather", args='{"city": "Paris"}')]}))
    a.feed(_chunk({"tool_calls": [_call(0, name="get_weather", args='{"city": "Lima"}')]}))
    turn = a.finish()
    assert [c.arguments["city"] for c in turn.tool_calls] == ["Paris", "Lima"]
    ids = [c.id for c in turn.tool_calls]
    assert len(set(ids)) == 2 and all(ids)  # missing ids are generated, unique


def test_repeated_name_in_every_fragment_is_not_a_new_call():
    a = StreamAssembler()
    a.feed(_chunk({"tool_calls": [_call(0, "c1", "read_file", '{"path": ')]}))
    a.feed(_chunk({"tool_calls": [_call(0, name="read_file", args='"a.txt"}')]}))
    turn = a.finish()
    assert len(turn.tool_calls) == 1
    assert turn.tool_calls[0].arguments == {"path": "a.txt"}


def test_arguments_sent_as_an_object_and_bad_json_never_raise():
    a = StreamAssembler()
    a.feed(_chunk({"tool_calls": [_call(0, "c1", "calculator", {"expression": "2*3"})]}))
    a.feed(_chunk({"tool_calls": [_call(1, "c2", "read_file", '{"path": ')]}))
    turn = a.finish()
    assert turn.tool_calls[0].arguments == {"expression": "2*3"}
    assert turn.tool_calls[1].parse_error and turn.tool_calls[1].arguments == {}


def test_content_deltas_are_returned_for_display():
    a = StreamAssembler()
    assert a.feed(_chunk({"role": "assistant"})) == ""
    assert a.feed(_chunk({"content": "Hel"})) == "Hel"
    assert a.feed(_chunk({"content": "lo"})) == "lo"
    assert a.finish().content == "Hello"
