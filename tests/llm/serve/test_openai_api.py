"""The server through the official `openai` SDK (and raw HTTP where exact shapes matter)."""

import json

import httpx
import pytest

from serve_testkit import ANSWER, CALL_ARGS, QUESTION, SYSTEM, TOOLS, running_server

openai = pytest.importorskip("openai")


def chat(client, messages, **kw):
    kw.setdefault("temperature", 0)
    return client.chat.completions.create(model="nano", messages=messages, **kw)


def test_models_and_health(server, client):
    url, _ = server
    assert [m.id for m in client.models.list().data] == ["nano"]
    assert client.models.retrieve("nano").id == "nano"
    assert httpx.get(f"{url}/health").json() == {"status": "ok"}


def test_chat_completion_with_usage(client, nano):
    r = chat(client, [{"role": "user", "content": "The quick brown fox"}], max_tokens=8)
    choice = r.choices[0]
    assert r.object == "chat.completion" and r.model == "nano"
    assert choice.finish_reason in ("stop", "length") and choice.message.role == "assistant"
    assert isinstance(choice.message.content, str)
    assert r.usage.completion_tokens <= 8
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_tool_round_trip_with_the_sdk(client):
    """question -> tool call -> tool result -> answer, parsed from what the model writes."""
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]
    r = chat(client, messages, tools=TOOLS, max_tokens=60)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "calculator"
    assert json.loads(call.function.arguments) == CALL_ARGS and call.id.startswith("call_")
    assert choice.message.content is None
    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "391"},
    ]
    r2 = chat(client, messages, tools=TOOLS, max_tokens=60)
    assert r2.choices[0].finish_reason == "stop"
    assert r2.choices[0].message.content == ANSWER and not r2.choices[0].message.tool_calls


def test_streamed_tool_call_deltas_assemble_to_the_same_call(client):
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]
    stream = chat(client, messages, tools=TOOLS, max_tokens=60, stream=True)
    calls, finish, content = {}, None, ""
    for chunk in stream:
        delta = chunk.choices[0].delta
        content += delta.content or ""
        for tc in delta.tool_calls or []:
            entry = calls.setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
            entry["id"] = tc.id or entry["id"]
            entry["name"] += (tc.function.name or "") if tc.function else ""
            entry["arguments"] += (tc.function.arguments or "") if tc.function else ""
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls" and content == ""
    assert list(calls) == [0] and calls[0]["name"] == "calculator" and calls[0]["id"].startswith("call_")
    assert json.loads(calls[0]["arguments"]) == CALL_ARGS


def test_tools_are_not_parsed_with_tool_choice_none(client):
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]
    r = chat(client, messages, tools=TOOLS, tool_choice="none", max_tokens=40)
    assert not r.choices[0].message.tool_calls and r.choices[0].finish_reason != "tool_calls"


def test_named_tool_choice_forces_a_call_to_that_tool(client):
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]
    choice = {"type": "function", "function": {"name": "calculator"}}
    r = chat(client, messages, tools=TOOLS, tool_choice=choice, max_tokens=60)
    assert r.choices[0].message.tool_calls[0].function.name == "calculator"


def test_stream_chunk_shapes_are_openais(server):
    url, _ = server
    body = {
        "model": "nano",
        "messages": [{"role": "user", "content": "Paris is the capital"}],
        "max_tokens": 6,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=60) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines) and lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    assert len({c["id"] for c in chunks}) == 1 and all(c["object"] == "chat.completion.chunk" for c in chunks)
    first, *middle, final, usage = chunks
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert first["choices"][0]["finish_reason"] is None
    for c in middle:
        assert set(c["choices"][0]["delta"]) == {"content"} and c["choices"][0]["finish_reason"] is None
    assert final["choices"][0]["delta"] == {} and final["choices"][0]["finish_reason"] in ("stop", "length")
    assert usage["choices"] == [] and len(middle) <= usage["usage"]["completion_tokens"] <= 6


def test_stream_text_equals_non_stream_text(client):
    messages = [{"role": "user", "content": "A small model learns"}]
    whole = chat(client, messages, max_tokens=20).choices[0].message.content
    streamed = "".join(c.choices[0].delta.content or "" for c in chat(client, messages, max_tokens=20, stream=True))
    assert streamed == whole


def test_n_choices_with_seed_are_reproducible(client):
    kw = dict(model="nano", messages=[{"role": "user", "content": "Germany"}], max_tokens=10, n=3, seed=7, temperature=1.0)
    a = client.chat.completions.create(**kw)
    b = client.chat.completions.create(**kw)
    assert [c.index for c in a.choices] == [0, 1, 2]
    assert [c.message.content for c in a.choices] == [c.message.content for c in b.choices]


def test_logprobs_and_top_logprobs(client):
    r = chat(client, [{"role": "user", "content": "The quick"}], max_tokens=5, logprobs=True, top_logprobs=3)
    content = r.choices[0].logprobs.content
    assert content and "".join(t.token for t in content) == r.choices[0].message.content
    for t in content:
        assert len(t.top_logprobs) == 3 and t.logprob <= 0
        assert t.top_logprobs[0].logprob >= t.top_logprobs[-1].logprob
        assert abs(t.logprob - t.top_logprobs[0].logprob) < 1e-4  # greedy picks the top token


def test_stop_sequence_ends_the_reply(client):
    messages = [{"role": "user", "content": "The quick brown fox"}]
    full = chat(client, messages, max_tokens=20).choices[0].message.content
    stop = full[3:6]
    r = chat(client, messages, max_tokens=20, stop=[stop])
    assert r.choices[0].finish_reason == "stop" and r.choices[0].message.content == full[: full.index(stop)]


def test_text_completions_with_several_prompts_echo_and_logprobs(client, nano):
    r = client.completions.create(model="nano", prompt=["Paris is", "The quick"], max_tokens=4, temperature=0, n=2)
    assert [c.index for c in r.choices] == [0, 1, 2, 3]
    assert r.choices[0].text == r.choices[1].text  # greedy: both samples of a prompt agree
    ids = nano.tokenizer.encode("Paris is")
    by_ids = client.completions.create(model="nano", prompt=ids, max_tokens=4, temperature=0)
    assert by_ids.choices[0].text == r.choices[0].text
    echoed = client.completions.create(model="nano", prompt="Paris is", max_tokens=4, temperature=0, echo=True)
    assert echoed.choices[0].text == "Paris is" + r.choices[0].text
    lp = client.completions.create(model="nano", prompt="Paris is", max_tokens=4, temperature=0, logprobs=2)
    assert "".join(lp.choices[0].logprobs.tokens) == lp.choices[0].text
    streamed = client.completions.create(model="nano", prompt="Paris is", max_tokens=4, temperature=0, stream=True)
    assert "".join(c.choices[0].text for c in streamed if c.choices) == r.choices[0].text


def test_tokenize_and_detokenize(server, nano):
    url, _ = server
    r = httpx.post(f"{url}/tokenize", json={"prompt": "Paris is the capital"}).json()
    assert r["tokens"] == nano.tokenizer.encode("Paris is the capital") and r["count"] == len(r["tokens"])
    assert httpx.post(f"{url}/detokenize", json={"tokens": r["tokens"]}).json() == {"prompt": "Paris is the capital"}
    chat_ids = httpx.post(f"{url}/tokenize", json={"messages": [{"role": "user", "content": "hi"}]}).json()["tokens"]
    assert nano.tokenizer.decode(chat_ids).endswith("<|im_start|>assistant\n")


def error_of(r):
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert "Traceback" not in r.text
    return body["error"]


def test_malformed_json_is_a_400(server):
    url, _ = server
    broken = b'{"model": "nano", "messages": ['
    r = httpx.post(f"{url}/v1/chat/completions", content=broken, headers={"content-type": "application/json"})
    assert r.status_code == 400 and error_of(r)["code"] == "invalid_json"


def test_unknown_model_and_unknown_route_are_404(server, client):
    with pytest.raises(openai.NotFoundError) as exc:
        client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "hi"}])
    assert exc.value.body["code"] == "model_not_found"
    r = httpx.get(f"{server[0]}/v1/nothing-here")
    assert r.status_code == 404 and "no route" in error_of(r)["message"]


def test_prompt_too_long_names_both_lengths(client, nano):
    limit = 512  # the nano preset's max_seq_len
    with pytest.raises(openai.BadRequestError) as exc:
        chat(client, [{"role": "user", "content": "fox " * 600}])
    err = exc.value.body
    assert err["code"] == "context_length_exceeded" and str(limit) in err["message"]
    with pytest.raises(openai.BadRequestError) as exc:
        chat(client, [{"role": "user", "content": "fox"}], max_tokens=600)
    msg = exc.value.body["message"]
    assert "600 for the completion" in msg and "in the prompt" in msg and str(limit) in msg


def test_bad_parameters(server, client):
    with pytest.raises(openai.UnprocessableEntityError):
        chat(client, [{"role": "user", "content": "hi"}], temperature=5)
    with pytest.raises(openai.BadRequestError) as exc:
        chat(client, [{"role": "user", "content": "hi"}], frequency_penalty=0.5)
    assert exc.value.body["param"] == "frequency_penalty"
    with pytest.raises(openai.BadRequestError):
        chat(client, [{"role": "user", "content": "hi"}], tool_choice="required")  # no tools given
    with pytest.raises(openai.BadRequestError):
        chat(client, [{"role": "tool", "content": "391", "tool_call_id": "nope"}])
    r = httpx.post(f"{server[0]}/v1/chat/completions", json={"model": "nano", "messages": "hi"})
    assert r.status_code == 422 and error_of(r)["param"] == "messages"


def test_api_key_is_required_on_every_route_but_health(nano):
    with running_server(nano, api_key="sekrit", kv_blocks=32, block_size=8) as (url, _):
        assert httpx.get(f"{url}/health").status_code == 200
        for path in ("/v1/models", "/metrics", "/openapi.json"):
            r = httpx.get(f"{url}{path}")
            assert r.status_code == 401 and error_of(r)["type"] == "authentication_error"
        bad = openai.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            bad.models.list()
        good = openai.OpenAI(base_url=f"{url}/v1", api_key="sekrit", max_retries=0)
        assert good.chat.completions.create(model="nano", messages=[{"role": "user", "content": "hi"}], max_tokens=2)


def test_tool_choice_required_makes_the_reply_a_call(client):
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]
    r = chat(client, messages, tools=TOOLS, tool_choice="required", max_tokens=60)
    assert r.choices[0].finish_reason == "tool_calls"
    assert r.choices[0].message.tool_calls[0].function.name == "calculator"


def test_a_failing_engine_step_is_a_500_without_traceback(server, client, monkeypatch):
    url, engine = server

    def boom(seqs):
        raise RuntimeError("simulated kernel failure")

    monkeypatch.setattr(engine.runner, "decode", boom)
    r = httpx.post(f"{url}/v1/completions", json={"model": "nano", "prompt": "Paris is", "max_tokens": 4})
    assert r.status_code == 500
    err = error_of(r)
    assert err["type"] == "server_error" and "simulated kernel failure" in err["message"]
    with pytest.raises(openai.APIError, match="simulated kernel failure"):
        for _ in chat(client, [{"role": "user", "content": "hi"}], max_tokens=4, stream=True):
            pass
    monkeypatch.undo()
    assert engine.alive and engine.cache.num_used_blocks == 0
    assert chat(client, [{"role": "user", "content": "hi"}], max_tokens=2).choices[0].finish_reason
