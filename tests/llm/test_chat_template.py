"""ChatML rendering (text, ids, loss mask) and the <tool_call> parser."""

import json

import pytest

from llm.chat_template import ChatTemplate, ParsedToolCall, parse_tool_calls, render_chat, render_chat_text
from llm.errors import TokenizerError
from llm.tokenizer import Tokenizer

SMOLLM2_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
SMOLLM2 = ChatTemplate("smollm2", SMOLLM2_SYSTEM)
# SmolLM2-135M-Instruct's chat template, verbatim from its tokenizer_config.json.
SMOLLM2_JINJA = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

CALCULATOR = {
    "type": "function",
    "function": {
        "name": "calculator",
        "description": "Evaluate an arithmetic expression.",
        "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]},
    },
}
TOOL_CHAT = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is 17*23?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "calculator", "arguments": '{"expression": "17*23"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "391"},
    {"role": "assistant", "content": "17 × 23 = 391."},
]
# The layout of DESIGN.md, written out by hand.
TOOL_CHAT_TEXT = (
    "<|im_start|>system\nYou are terse.\n\n# Tools\n<tools>\n"
    '{"name": "calculator", "description": "Evaluate an arithmetic expression.", "parameters": {"type": "object", '
    '"properties": {"expression": {"type": "string"}}, "required": ["expression"]}}\n'
    "</tools>\nTo call tools, reply with one or more blocks, each:\n"
    '<tool_call>{"name": "<tool>", "arguments": {...}}</tool_call><|im_end|>\n'
    "<|im_start|>user\nWhat is 17*23?<|im_end|>\n"
    '<|im_start|>assistant\n<tool_call>{"name": "calculator", "arguments": {"expression": "17*23"}}</tool_call>'
    "<|im_end|>\n"
    '<|im_start|>tool\n<tool_response>{"name": "calculator", "content": "391"}</tool_response><|im_end|>\n'
    "<|im_start|>assistant\n17 × 23 = 391.<|im_end|>\n"
)


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    corpus = [
        "The user asks a question and the assistant answers it. " * 5,
        '<tool_call>{"name": "calculator", "arguments": {"expression": "1+1"}}</tool_call>\n' * 5,
        "你好，世界！天气很好。🎉 " * 5,
    ]
    return Tokenizer.train(corpus, vocab_size=400)


def masked_runs(tok, ids, mask):
    """Decoded text of each maximal run of mask == 1."""
    runs, cur = [], []
    for i, m in zip(ids, mask, strict=True):
        if m:
            cur.append(i)
        elif cur:
            runs.append(tok.decode(cur))
            cur = []
    if cur:
        runs.append(tok.decode(cur))
    return runs


def test_tool_chat_matches_documented_layout(tok):
    assert render_chat_text(tok, TOOL_CHAT, tools=[CALCULATOR]) == TOOL_CHAT_TEXT


def test_mask_covers_exactly_the_assistant_spans(tok):
    ids, mask = render_chat(tok, TOOL_CHAT, tools=[CALCULATOR])
    assert len(ids) == len(mask) and set(mask) == {0, 1}
    assert masked_runs(tok, ids, mask) == [
        '<tool_call>{"name": "calculator", "arguments": {"expression": "17*23"}}</tool_call><|im_end|>',
        "17 × 23 = 391.<|im_end|>",
    ]
    unmasked = tok.decode([i for i, m in zip(ids, mask) if not m])
    for part in ("You are terse.", "# Tools", "What is 17*23?", "<tool_response>", "<|im_start|>assistant\n"):
        assert part in unmasked
    # Every <|im_end|> but the assistants' is unmasked; the "\n" after each turn is never masked.
    im_end = tok.token_id("<|im_end|>")
    assert [m for i, m in zip(ids, mask) if i == im_end] == [0, 0, 1, 0, 1]
    assert mask[-1] == 0 and tok.decode(ids[-1:]) == "\n"


def test_weight_zero_keeps_an_assistant_message_as_context_only(tok):
    chat = [dict(m) for m in TOOL_CHAT]
    chat[2]["weight"] = 0  # the tool call: read, not learned
    ids, mask = render_chat(tok, chat, tools=[CALCULATOR])
    assert ids == render_chat(tok, TOOL_CHAT, tools=[CALCULATOR])[0]  # the text is unchanged
    assert masked_runs(tok, ids, mask) == ["17 × 23 = 391.<|im_end|>"]
    chat[2]["weight"] = None  # Arrow's filler for a key other rows have: learned as usual
    assert render_chat(tok, chat, tools=[CALCULATOR]) == render_chat(tok, TOOL_CHAT, tools=[CALCULATOR])
    chat[2]["weight"] = 0.5
    with pytest.raises(TokenizerError, match="message 2 has weight 0.5; an assistant message's weight is 0 or 1"):
        render_chat(tok, chat, tools=[CALCULATOR])


def test_assistant_text_and_tool_calls_together(tok):
    chat = [
        {"role": "user", "content": "Weather in Paris and Oslo?"},
        {
            "role": "assistant",
            "content": "Let me check both.",
            "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
                {"id": "b", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}},
            ],
        },
        {"role": "tool", "tool_call_id": "a", "content": "18C, sunny"},
        {"role": "tool", "tool_call_id": "b", "content": "2C, snow"},
    ]
    ids, mask = render_chat(tok, chat, add_generation_prompt=True)
    body = (
        "Let me check both.\n"
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>\n'
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>'
    )
    assert masked_runs(tok, ids, mask) == [body + "<|im_end|>"]
    # Consecutive tool results: one turn, one <tool_response> per line, names found via the call ids.
    assert tok.decode(ids).endswith(
        "<|im_start|>tool\n"
        '<tool_response>{"name": "get_weather", "content": "18C, sunny"}</tool_response>\n'
        '<tool_response>{"name": "get_weather", "content": "2C, snow"}</tool_response><|im_end|>\n'
        "<|im_start|>assistant\n"
    )
    assert tok.decode(ids).count("<|im_start|>tool") == 1
    # The rendered calls parse back to what went in.
    content, calls = parse_tool_calls(body)
    assert content == "Let me check both."
    assert [(c.name, c.arguments) for c in calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "Oslo"}),
    ]


def test_generation_prompt_is_unmasked(tok):
    ids, mask = render_chat(tok, [{"role": "user", "content": "hi"}], add_generation_prompt=True)
    assert tok.decode(ids).endswith("<|im_end|>\n<|im_start|>assistant\n")
    assert sum(mask) == 0


PLAIN_CHATS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "Answer in French."}, {"role": "user", "content": "Hello!"}],
    [
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Say 你好 🎉\nplease."},
        {"role": "assistant", "content": "你好 🎉"},
    ],
]


@pytest.mark.parametrize("messages", PLAIN_CHATS)
@pytest.mark.parametrize("add_generation_prompt", [False, True])
def test_smollm2_text_matches_transformers(tok, messages, add_generation_prompt):
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import models
    from transformers import PreTrainedTokenizerFast

    hf = PreTrainedTokenizerFast(tokenizer_object=HFTokenizer(models.BPE()))
    hf.chat_template = SMOLLM2_JINJA
    expected = hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    text = render_chat_text(tok, messages, add_generation_prompt=add_generation_prompt, template=SMOLLM2)
    assert text == expected


@pytest.mark.parametrize("messages", PLAIN_CHATS)
def test_ids_equal_whole_text_encoding(tok, messages):
    # What a tokenizer applied to the rendered string (as Hugging Face does) would produce.
    ids, _ = render_chat(tok, messages, add_generation_prompt=True, template=SMOLLM2)
    assert ids == tok.encode_with_special(render_chat_text(tok, messages, add_generation_prompt=True, template=SMOLLM2))


def test_default_system_only_when_no_system_message(tok):
    user = {"role": "user", "content": "hi"}
    assert render_chat_text(tok, [user]) == "<|im_start|>user\nhi<|im_end|>\n"
    assert render_chat_text(tok, [user], template=SMOLLM2).startswith(f"<|im_start|>system\n{SMOLLM2_SYSTEM}<|im_end|>")
    own = [{"role": "system", "content": "Be brief."}, user]
    assert SMOLLM2_SYSTEM not in render_chat_text(tok, own, template=SMOLLM2)
    # Tools go after the default system prompt, or make up the whole system turn when there is none.
    with_default = render_chat_text(tok, [user], tools=[CALCULATOR], template=SMOLLM2)
    assert with_default.startswith(f"<|im_start|>system\n{SMOLLM2_SYSTEM}\n\n# Tools\n<tools>\n")
    assert render_chat_text(tok, [user], tools=[CALCULATOR]).startswith("<|im_start|>system\n# Tools\n<tools>\n")


def test_bare_tool_specs_and_text_parts(tok):
    text = render_chat_text(
        tok,
        [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}],
        tools=[{"name": "noop"}],
    )
    assert '<tools>\n{"name": "noop"}\n</tools>' in text
    assert "<|im_start|>user\nab<|im_end|>" in text


def test_tool_name_from_message(tok):
    chat = [{"role": "user", "content": "x"}, {"role": "tool", "name": "ls", "content": "a.txt"}]
    assert '<tool_response>{"name": "ls", "content": "a.txt"}</tool_response>' in render_chat_text(tok, chat)


@pytest.mark.parametrize(
    "messages, problem",
    [
        ([], "at least one message"),
        ([{"role": "robot", "content": "x"}], "message 0 has role 'robot'"),
        ([{"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "zz", "content": "1"}], "tool message 1"),
        (
            [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{oops"}}]}],
            "message 0 tool call 0 \\(f\\): arguments must be a JSON object",
        ),
        ([{"role": "assistant", "tool_calls": [{"function": {"arguments": "{}"}}]}], 'string "name"'),
        ([{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}], "list of text parts"),
    ],
)
def test_bad_messages_raise(tok, messages, problem):
    with pytest.raises(TokenizerError, match=problem):
        render_chat(tok, messages)


def test_parse_several_calls_with_prose():
    text = (
        "I will look this up.\n"
        '<tool_call>{"name": "search", "arguments": {"q": "paris"}}</tool_call>\n'
        "and also\n"
        '<tool_call>\n  {"name": "calculator", "arguments": "{\\"expression\\": \\"2+2\\"}"}\n</tool_call>\n'
        '<tool_call>{"name": "now"}</tool_call>  '
    )
    content, calls = parse_tool_calls(text)
    assert content == "I will look this up.\n\nand also"
    assert [(c.name, c.arguments) for c in calls] == [
        ("search", {"q": "paris"}),
        ("calculator", {"expression": "2+2"}),
        ("now", {}),
    ]
    assert calls[0].raw == '<tool_call>{"name": "search", "arguments": {"q": "paris"}}</tool_call>'
    assert all(c.raw in text for c in calls)


@pytest.mark.parametrize(
    "bad",
    [
        '<tool_call>{"name": "search", "arguments": {"q": }</tool_call>',  # invalid JSON
        '<tool_call>{"arguments": {"q": "x"}}</tool_call>',  # no name
        '<tool_call>{"name": 3}</tool_call>',  # name not a string
        '<tool_call>{"name": "f", "arguments": [1, 2]}</tool_call>',  # arguments not an object
        '<tool_call>{"name": "f", "arguments": "{not json"}</tool_call>',  # arguments string not JSON
        '<tool_call>["search"]</tool_call>',  # not an object
        '<tool_call>{"name": "f"}',  # never closed
        '<tool_call>{"name": "f"} trailing</tool_call>',  # text after the JSON
    ],
)
def test_bad_blocks_stay_as_text(bad):
    good = '<tool_call>{"name": "ok", "arguments": {}}</tool_call>'
    content, calls = parse_tool_calls(f"before {bad} middle {good} after")
    assert content == f"before {bad} middle  after"
    assert calls == [ParsedToolCall("ok", {}, good)]


def test_closing_tag_inside_an_argument_string():
    args = {"code": 'print("</tool_call>")'}
    block = f"<tool_call>{json.dumps({'name': 'run_python', 'arguments': args})}</tool_call>"
    content, calls = parse_tool_calls(f"Running it. {block}")
    assert content == "Running it."
    assert [(c.name, c.arguments, c.raw) for c in calls] == [("run_python", args, block)]


def test_no_calls():
    assert parse_tool_calls("  The answer is 4.\n") == ("The answer is 4.", [])
    assert parse_tool_calls("") == ("", [])
