"""The engine: greedy equals the reference loop, batches equal single runs, end conditions, streaming, errors."""

import pytest
import torch

from llm.errors import InferenceError
from llm.infer.engine import Engine
from llm.infer.sampling import SamplingParams


def naive_greedy(model, prompt, n):
    """The reference: full forward over the whole sequence at every step, no cache."""
    ids = list(prompt)
    for _ in range(n):
        logits, _ = model(torch.tensor([ids]))
        ids.append(int(logits[0, -1].argmax()))
    return ids[len(prompt) :]


def test_greedy_generation_equals_the_naive_loop(make_model):
    model = make_model(seed=5, sharp=20.0)
    engine = Engine(model)
    prompt = [5, 17, 42, 99]
    out = engine.generate(prompt, SamplingParams(max_tokens=12))[0]
    assert out.tokens == naive_greedy(model, prompt, 12) and out.finish_reason == "length"


def test_a_batch_of_prompts_decodes_like_each_prompt_alone(make_model):
    engine = Engine(make_model(seed=6, sharp=20.0))
    prompts = [[1, 2, 3], [9] * 11, [40, 41, 42, 43, 44, 45]]
    params = SamplingParams(max_tokens=8)
    together = [c.tokens for c in engine.generate(prompts, params)]
    alone = [engine.generate(p, params)[0].tokens for p in prompts]
    assert together == alone


def test_end_of_sequence_id_ends_the_output_and_is_not_included(make_model):
    model = make_model(seed=5, sharp=20.0)
    greedy = naive_greedy(model, [5, 17, 33], 10)
    k = next(i for i in range(1, 10) if greedy[i] not in greedy[:i])  # first new token after the start
    engine = Engine(model, end_ids=[greedy[k]])
    out = engine.generate([5, 17, 33], SamplingParams(max_tokens=10))[0]
    assert out.tokens == greedy[:k] and out.finish_reason == "stop"
    kept = engine.generate([5, 17, 33], SamplingParams(max_tokens=10, ignore_eos=True))[0]
    assert kept.tokens == greedy and kept.finish_reason == "length"


def test_stream_yields_text_and_ends_at_a_stop_string(make_model, tokenizer):
    model = make_model(seed=7, sharp=20.0, vocab_size=259)
    engine = Engine(model, tokenizer)
    full = engine.generate([72, 105], SamplingParams(max_tokens=20))[0]
    assert full.text == tokenizer.decode(full.tokens)
    stop = full.text[5:8]  # three characters from the middle: several byte tokens
    events = list(engine.stream([72, 105], SamplingParams(max_tokens=20, stop=[stop])))
    text = "".join(e.text for e in events)
    assert text == full.text[: full.text.index(stop)]
    assert events[-1].finish_reason == "stop" and [e.finish_reason for e in events[:-1]] == [None] * (len(events) - 1)


def test_sampling_with_a_seed_is_reproducible(make_model):
    engine = Engine(make_model(seed=8))
    params = SamplingParams(temperature=1.0, top_k=50, max_tokens=10, seed=123)
    assert engine.generate([1, 2], params)[0].tokens == engine.generate([1, 2], params)[0].tokens


def test_context_longer_than_the_model_is_a_clear_error(make_model):
    engine = Engine(make_model())  # max_seq_len 128
    with pytest.raises(InferenceError, match="200 tokens but the model's maximum context is 128"):
        engine.generate([1] * 200)
    with pytest.raises(InferenceError, match="no prompts"):
        engine.generate([])
    with pytest.raises(InferenceError, match="empty"):
        engine.generate([[1], []])
    with pytest.raises(InferenceError, match="outside the vocabulary"):
        engine.generate([5, 100000])


def test_generation_stops_at_the_models_maximum_context(make_model):
    engine = Engine(make_model())
    out = engine.generate([1] * 120, SamplingParams(max_tokens=50, ignore_eos=True))[0]
    assert len(out.tokens) == 8 and out.finish_reason == "length"


def test_generate_text_uses_the_chat_template_and_streams(nano_checkpoint):
    from llm.infer.generate import generate_text
    from llm.infer.loading import load_model

    ck = load_model(str(nano_checkpoint))
    pieces = []
    text = generate_text(ck, chat="hi", max_tokens=6, on_text=pieces.append)
    assert text == "".join(pieces) == generate_text(ck, chat="hi", max_tokens=6)


@pytest.mark.model
def test_smollm2_answers_with_every_weight_format(smollm2):
    from llm.infer.generate import generate_text
    from llm.infer.loading import make_engine, prompt_ids

    assert generate_text(smollm2, chat="What is the capital of France?") == "The capital of France is Paris."
    ids = prompt_ids(smollm2, chat="What is the capital of France?")
    engine = make_engine(smollm2, "bfloat16")
    assert "Paris" in engine.generate(ids, SamplingParams(max_tokens=12))[0].text
