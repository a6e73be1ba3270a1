"""The text fallback parser: <tool_call> blocks, Action lines, bare JSON."""

from iclaw.providers.text_calls import parse_text_tool_calls

SCHEMAS = {
    "calculator": {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]},
    "read_file": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
}


def test_chatml_blocks_several_and_surrounding_text():
    text = (
        'Let me compute.\n<tool_call>{"name": "calculator", "arguments": {"expression": "17*23"}}</tool_call>\n'
        '<tool_call>{"name": "read_file", "arguments": {"path": "a.txt"}}</tool_call>'
    )
    parsed = parse_text_tool_calls(text, SCHEMAS)
    assert [(c.name, c.arguments) for c in parsed.calls] == [
        ("calculator", {"expression": "17*23"}),
        ("read_file", {"path": "a.txt"}),
    ]
    assert parsed.content == "Let me compute."
    assert not parsed.problems


def test_unclosed_final_block_and_string_arguments():
    text = '<tool_call>{"name": "read_file", "arguments": "{\\"path\\": \\"b.txt\\"}"}'
    parsed = parse_text_tool_calls(text, SCHEMAS)
    assert parsed.calls[0].arguments == {"path": "b.txt"}


def test_malformed_block_is_a_problem_not_an_exception():
    parsed = parse_text_tool_calls('<tool_call>{"name": "calculator", "arguments": {oops</tool_call>', SCHEMAS)
    assert parsed.calls == []
    assert parsed.problems and "tool_call" in parsed.problems[0]


def test_action_lines_json_and_plain_input():
    text = "Thought: I need math.\nAction: calculator\nAction Input: {\"expression\": \"2+2\"}\n"
    parsed = parse_text_tool_calls(text, SCHEMAS)
    assert parsed.calls[0].arguments == {"expression": "2+2"}
    assert parsed.content == "Thought: I need math."
    plain = parse_text_tool_calls("Action: read_file\nAction Input: notes.txt", SCHEMAS)
    assert plain.calls[0].arguments == {"path": "notes.txt"}


def test_bare_json_object_only_for_known_tools():
    parsed = parse_text_tool_calls('{"name": "calculator", "arguments": {"expression": "1"}}', SCHEMAS)
    assert parsed.calls[0].name == "calculator"
    other = parse_text_tool_calls('{"name": "Bob", "arguments": {}}', SCHEMAS)
    assert other.calls == [] and other.content.startswith("{")


def test_plain_answer_is_untouched():
    parsed = parse_text_tool_calls("The answer is 42.", SCHEMAS)
    assert parsed.calls == [] and parsed.problems == [] and parsed.content == "The answer is 42."
