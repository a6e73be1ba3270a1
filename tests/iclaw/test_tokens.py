import base64
import json

import pytest

from iclaw.errors import ProfileError
from iclaw.tokens import EstimatingCounter, TiktokenCounter, count_messages, load_counter


def test_estimate_grows_with_text_and_counts_digits_singly():
    counter = EstimatingCounter()
    assert counter.count("") == 0
    assert counter.count("hello world") == 2
    # Digits are one token each (SmolLM2's pre-tokenizer), so numbers cost more than words.
    assert counter.count("1234567890") == 10
    assert counter.count("word " * 100) > counter.count("word " * 10)


def test_count_messages_adds_framing_and_tool_schemas():
    counter = EstimatingCounter()
    messages = [{"role": "user", "content": "hi"}]
    tools = [{"type": "function", "function": {"name": "x", "parameters": {}}}]
    assert count_messages(counter, messages) == 5 + counter.count("hi")
    assert count_messages(counter, messages, tools) > count_messages(counter, messages)


def test_tokenizer_json_gives_exact_tiktoken_counts(tmp_path):
    ranks = {base64.b64encode(bytes([i])).decode(): i for i in range(256)}
    ranks[base64.b64encode(b"ab").decode()] = 256
    (tmp_path / "tokenizer.json").write_text(json.dumps({"pattern": r"\S+|\s+", "ranks_b64": ranks}))
    counter = load_counter(str(tmp_path))
    assert isinstance(counter, TiktokenCounter)
    assert counter.count("ab") == 1  # merged
    assert counter.count("abc") == 2


def test_unknown_tokenizer_path_is_a_profile_error(tmp_path):
    with pytest.raises(ProfileError, match="memory.tokenizer"):
        load_counter(str(tmp_path / "missing.json"))
