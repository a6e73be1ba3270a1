"""The server on the real SmolLM2-135M-Instruct (needs it pulled: `llm pull smollm2-135m-instruct`)."""

import pytest
from serve_testkit import run_concurrently, running_server

openai = pytest.importorskip("openai")
pytestmark = pytest.mark.model

PROMPTS = [
    "What is the capital of France?",
    "Name three colours of the rainbow.",
    "Write one sentence about cats.",
    "What is 2 + 2?",
    "Give me a synonym for happy.",
]


@pytest.fixture(scope="module")
def smol_client(smollm2):
    with running_server(smollm2, name="smol", max_batch=8, kv_blocks=64, block_size=16, max_model_len=1024) as (url, engine):
        yield openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0, timeout=300), engine


def ask(client, text, max_tokens=24):
    r = client.chat.completions.create(
        model="smol", messages=[{"role": "user", "content": text}], temperature=0, max_tokens=max_tokens
    )
    return r.choices[0].message.content


def test_greedy_answer_through_the_sdk(smol_client):
    client, _ = smol_client
    assert ask(client, "What is the capital of France?") == "The capital of France is Paris."


def test_concurrent_greedy_equals_sequential_greedy(smol_client):
    client, engine = smol_client
    sequential = [ask(client, p) for p in PROMPTS]
    steps = engine.steps
    results = run_concurrently(lambda p: ask(client, p), PROMPTS)
    assert results == sequential
    assert engine.steps - steps < sum(24 + 8 for _ in PROMPTS) / 2  # they really ran as one batch
