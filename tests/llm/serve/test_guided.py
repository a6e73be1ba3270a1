"""Guided decoding: a random-init model's constrained replies always parse and follow the schema.

The model is the `nano` preset with random weights, sampled at temperature 1, so whatever
it writes comes from the grammar's mask, not from training. The schemas bound every value
(string lengths, integer ranges, no extra keys) so each reply ends well inside max_tokens.
"""

import json

import httpx
import pytest
import torch
from serve_testkit import QUESTION, SYSTEM, run_concurrently, running_server, train_tokenizer

from llm.checkpoint import load_checkpoint, make_meta, save_checkpoint
from llm.config import load_preset
from llm.infer.loading import stop_ids
from llm.infer.guidance import Guidance, reply_grammar, tool_arguments_schema
from llm.infer.sampling import constrain
from llm.model import GPT

WEATHER = {
    "name": "get_weather",
    "description": "Weather forecast for a city.",
    "parameters": {
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 10},
            "days": {"type": "integer", "minimum": 1, "maximum": 7},
            "units": {"enum": ["c", "f"]},
            "alerts": {"type": "boolean"},
        },
        "required": ["city", "days"],
        "additionalProperties": False,
    },
}
CALC = {
    "name": "calculator",
    "description": "Evaluate an arithmetic expression.",
    "parameters": {
        "type": "object",
        "properties": {"expression": {"type": "string", "maxLength": 16}},
        "required": ["expression"],
        "additionalProperties": False,
    },
}
TOOLS = [{"type": "function", "function": f} for f in (WEATHER, CALC)]
ANSWER = {
    "type": "object",
    "properties": {
        "answer": {"type": "string", "maxLength": 20},
        "confidence": {"type": "integer", "minimum": 0, "maximum": 100},
        "sources": {"type": "array", "items": {"enum": ["web", "book"]}, "maxItems": 3},
    },
    "required": ["answer", "confidence"],
    "additionalProperties": False,
}
MESSAGES = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]
SEEDS = [0, 1, 2, 3, 4, 5]


@pytest.fixture(scope="module")
def random_nano(tmp_path_factory):
    torch.manual_seed(0)
    tok = train_tokenizer()
    # A longer context than the preset's, so that a reply of several calls always fits.
    cfg = load_preset("nano").model_copy(update={"vocab_size": tok.vocab_size, "name": "nano-random", "max_seq_len": 1024})
    path = save_checkpoint(tmp_path_factory.mktemp("ckpt") / "nano-random", GPT(cfg), cfg, tok, make_meta("pretrain"))
    return load_checkpoint(path)


@pytest.fixture(scope="module")
def rserver(random_nano):
    with running_server(random_nano, max_batch=8, kv_blocks=1024, block_size=8) as s:
        yield s[0]


def post(url, **body):
    body = {"model": "nano", "messages": MESSAGES, "temperature": 1.0, "max_tokens": 600, **body}
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=120)


def check_value(value, schema):
    if "enum" in schema:
        assert value in schema["enum"]
    kind = schema.get("type")
    if kind == "string":
        assert isinstance(value, str) and len(value) <= schema.get("maxLength", len(value))
    elif kind == "integer":
        assert isinstance(value, int) and not isinstance(value, bool)
        assert schema.get("minimum", value) <= value <= schema.get("maximum", value)
    elif kind == "boolean":
        assert isinstance(value, bool)
    elif kind == "array":
        assert isinstance(value, list) and len(value) <= schema.get("maxItems", len(value))
        for item in value:
            check_value(item, schema["items"])
    elif kind == "object":
        check_object(value, schema)


def check_object(obj, schema):
    """The subset of JSON Schema the schemas above use, checked by hand."""
    assert isinstance(obj, dict)
    assert set(schema["required"]) <= set(obj) <= set(schema["properties"])
    for key, value in obj.items():
        check_value(value, schema["properties"][key])


def check_calls(choice, allowed=("get_weather", "calculator")):
    assert choice["finish_reason"] == "tool_calls", choice
    message = choice["message"]
    assert message["content"] is None and message["tool_calls"]
    tools = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
    for call in message["tool_calls"]:
        assert call["function"]["name"] in allowed
        check_object(json.loads(call["function"]["arguments"]), tools[call["function"]["name"]])
    return [c["function"]["name"] for c in message["tool_calls"]]


def test_required_calls_of_a_random_model_always_parse_and_validate(rserver):
    names = set()
    for seed in SEEDS:
        r = post(rserver, tools=TOOLS, tool_choice="required", seed=seed, n=4)
        assert r.status_code == 200, r.text
        for choice in r.json()["choices"]:
            names.update(check_calls(choice))
    assert names == {"get_weather", "calculator"}  # the choice of tool is the model's


def test_without_parallel_calls_the_reply_is_exactly_one_call(rserver):
    for seed in SEEDS[:3]:
        r = post(rserver, tools=TOOLS, tool_choice="required", parallel_tool_calls=False, seed=seed, n=4)
        for choice in r.json()["choices"]:
            assert len(check_calls(choice)) == 1


def test_a_named_function_forces_that_name(rserver):
    choice = {"type": "function", "function": {"name": "calculator"}}
    for seed in SEEDS[:3]:
        r = post(rserver, tools=TOOLS, tool_choice=choice, seed=seed, n=4)
        for c in r.json()["choices"]:
            assert check_calls(c, allowed=("calculator",)) == ["calculator"]


def test_streamed_required_calls_assemble_to_valid_calls(rserver):
    body = {"model": "nano", "messages": MESSAGES, "tools": TOOLS, "tool_choice": "required", "temperature": 1.0}
    body.update(max_tokens=600, seed=11, stream=True)
    calls, finish = {}, None
    with httpx.stream("POST", f"{rserver}/v1/chat/completions", json=body, timeout=120) as r:
        for line in r.iter_lines():
            if not line or line == "data: [DONE]":
                continue
            choice = json.loads(line[6:])["choices"][0]
            assert not choice["delta"].get("content")
            for tc in choice["delta"].get("tool_calls", []):
                entry = calls.setdefault(tc["index"], {"name": "", "arguments": ""})
                entry["name"] += tc["function"].get("name") or ""
                entry["arguments"] += tc["function"].get("arguments") or ""
            finish = choice["finish_reason"] or finish
    assert finish == "tool_calls" and calls
    message = {"content": None, "tool_calls": [{"function": c} for c in calls.values()]}
    check_calls({"finish_reason": finish, "message": message})


def test_response_format_json_schema_output_parses_and_validates(rserver):
    fmt = {"type": "json_schema", "json_schema": {"name": "answer", "schema": ANSWER, "strict": True}}
    for seed in SEEDS:
        r = post(rserver, response_format=fmt, seed=seed, n=4)
        for choice in r.json()["choices"]:
            assert choice["finish_reason"] == "stop"
            check_object(json.loads(choice["message"]["content"]), ANSWER)


def test_json_schema_with_tools_on_auto_is_a_call_or_the_json(rserver):
    fmt = {"type": "json_schema", "json_schema": {"name": "answer", "schema": ANSWER}}
    for seed in SEEDS[:3]:
        r = post(rserver, tools=TOOLS, response_format=fmt, seed=seed, n=4)
        for choice in r.json()["choices"]:
            if choice["message"]["tool_calls"]:
                check_calls(choice)
            else:
                check_object(json.loads(choice["message"]["content"]), ANSWER)


def test_unconstrained_sampling_is_unchanged_by_guided_batch_mates(rserver):
    plain = dict(messages=[{"role": "user", "content": "Paris"}], seed=5, max_tokens=24)
    alone = post(rserver, **plain).json()["choices"][0]["message"]["content"]
    guided = dict(tools=TOOLS, tool_choice="required", seed=1)
    together = run_concurrently(lambda kw: post(rserver, **kw).json(), [plain, guided, guided, plain])
    assert [together[i]["choices"][0]["message"]["content"] for i in (0, 3)] == [alone, alone]
    check_calls(together[1]["choices"][0])


def test_guided_tools_flag_keeps_unconstrained_and_valid_outputs_identical(server, nano):
    """The fine-tuned fixture writes a valid call greedily: with --guided-tools the mask never binds."""
    url, _ = server
    requests = [
        dict(messages=MESSAGES, tools=[{"type": "function", "function": CALC}], temperature=0, max_tokens=60),
        dict(messages=[{"role": "user", "content": "The quick brown fox"}], seed=3, max_tokens=20),
    ]
    with running_server(nano, kv_blocks=128, block_size=8, guided_tools=True) as (guided_url, _):
        for kw in requests:
            off, on = post(url, **kw).json(), post(guided_url, **kw).json()
            assert on["choices"][0]["message"] == off["choices"][0]["message"] and on["usage"] == off["usage"]


def test_constrained_requests_do_not_speculate(random_nano):
    with running_server(random_nano, kv_blocks=128, block_size=8, prompt_lookup=True) as (url, engine):
        r = post(url, tools=TOOLS, tool_choice="required", parallel_tool_calls=False, temperature=0)
        check_calls(r.json()["choices"][0])
        assert engine.metrics.speculative_proposed._value.get() == 0


def error_of(r):
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert "\n" not in err["message"] and "Traceback" not in r.text
    return err


def test_bad_guided_requests_are_400s_with_one_line(rserver):
    named = {"type": "function", "function": {"name": "nope"}}
    err = error_of(post(rserver, tools=TOOLS, tool_choice=named))
    assert err["param"] == "tool_choice" and "nope" in err["message"]

    bad_tool = {"name": "broken", "parameters": {"type": "object", "properties": {"x": {"type": "strin"}}}}
    err = error_of(post(rserver, tools=[*TOOLS, {"type": "function", "function": bad_tool}], tool_choice="required"))
    assert err["param"] == "tools" and "tools[2] (broken)" in err["message"] and "strin" in err["message"]

    regex = {"name": "lookaround", "parameters": {"properties": {"x": {"type": "string", "pattern": "(?=a)"}}}}
    err = error_of(post(rserver, tools=[{"type": "function", "function": regex}], tool_choice="required"))
    assert err["param"] == "tools" and "look-around" in err["message"]

    not_object = {"name": "text", "parameters": {"type": "string"}}
    err = error_of(post(rserver, tools=[{"type": "function", "function": not_object}], tool_choice="required"))
    assert err["param"] == "tools" and "object" in err["message"]

    bad_schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"$ref": "#/nowhere"}}}
    err = error_of(post(rserver, response_format=bad_schema))
    assert err["param"] == "response_format" and "nowhere" in err["message"]

    err = error_of(post(rserver, response_format={"type": "json_schema"}))
    assert err["param"] == "response_format"

    fmt = {"type": "json_object"}
    err = error_of(post(rserver, tools=TOOLS, tool_choice="required", response_format=fmt))
    assert err["param"] == "response_format"


def test_guide_follows_the_tool_call_grammar(random_nano):
    tok = random_nano.tokenizer
    guidance = Guidance(tok, stop_ids(random_nano))
    tools = {f["name"]: tool_arguments_schema(f["parameters"]) for f in (WEATHER, CALC)}
    text_mode = guidance.compile(reply_grammar(tools, "text"))
    for t in tok.encode("Let me check. <tool_call>"):
        assert text_mode.allowed()[t]
        text_mode.accept(t)
    allowed = [tok.decode([i]) for i in text_mode.allowed().nonzero().flatten().tolist()]
    assert allowed and all('{"name": "'.startswith(a) for a in allowed)  # prose is over: a call must follow

    one = guidance.compile(reply_grammar(tools, "one"))
    call = '<tool_call>{"name": "calculator", "arguments": {"expression": "17*23"}}</tool_call>'
    for t in tok.encode(call):
        assert not one.done and one.allowed()[t]
        one.accept(t)
    assert one.done and one.error is None
    padded = constrain(torch.zeros(tok.vocab_size + 4), torch.ones(tok.vocab_size, dtype=torch.bool))
    assert torch.isinf(padded[tok.vocab_size :]).all() and not torch.isinf(padded[: tok.vocab_size]).any()


def test_tool_arguments_are_only_the_declared_ones_unless_the_schema_opens_them(random_nano):
    tok = random_nano.tokenizer
    guidance = Guidance(tok, stop_ids(random_nano))
    props = {"type": "object", "properties": {"expression": {"type": "string"}}}

    def fits(parameters, text):
        guide = guidance.compile(reply_grammar({"calculator": tool_arguments_schema(parameters)}, "one"))
        for t in tok.encode(text):
            if not guide.allowed()[t]:
                return False
            guide.accept(t)
        return guide.done

    extra = '<tool_call>{"name": "calculator", "arguments": {"expression": "1", "x": 2}}</tool_call>'
    assert fits(props, extra.replace(', "x": 2', ""))
    assert not fits(props, extra)
    assert fits({**props, "additionalProperties": True}, extra)
    assert fits(None, extra)


def test_json_object_grammar_refuses_prose_first(random_nano):
    tok = random_nano.tokenizer
    guide = Guidance(tok, stop_ids(random_nano)).compile(reply_grammar(answer={"type": "object"}))
    allowed = [tok.decode([i]) for i in guide.allowed().nonzero().flatten().tolist()]
    assert allowed and all(a.startswith("{") for a in allowed)
    for t in tok.encode('{"a": [1, true]}'):
        guide.accept(t)
    assert guide.done and guide.error is None


def test_bench_decode_reports_the_cost_of_the_mask(random_nano, capsys):
    from llm.cli import main

    main(["bench", "decode", str(random_nano.path), "--guided", "--tokens", "40", "--repeats", "1", "--json"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["guided_decode_tok_s"] > 0 and out["plain_loop_decode_tok_s"] > 0 and out["grammar_ms_per_token"] > 0
    assert out["guided_vs_plain"] == pytest.approx(out["guided_decode_tok_s"] / out["plain_loop_decode_tok_s"], rel=0.01)
    assert out["guided_calls_parsed"] >= 0 and out["guided_prompt_tokens"] > 0


def test_every_compiled_guide_starts_fresh_though_the_grammar_is_cached(random_nano):
    tok = random_nano.tokenizer
    guidance = Guidance(tok, stop_ids(random_nano), cache_size=1)
    grammar = reply_grammar(answer={"type": "object"})
    first = guidance.compile(grammar)
    start = first.allowed()
    for t in tok.encode('{"a": 1}'):
        first.accept(t)
    guidance.compile(reply_grammar(answer={"type": "array"}))  # evicts the object grammar
    for _ in range(2):
        again = guidance.compile(grammar)
        assert first.done and not again.done and again.allowed().equal(start)
