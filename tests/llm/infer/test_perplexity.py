"""Perplexity / bits-per-byte against a direct computation, and window bookkeeping."""

import math

import pytest
import torch
import torch.nn.functional as F

from llm.errors import DataError
from llm.infer.inference_model import InferenceModel
from llm.infer.perplexity import evaluate_perplexity


def test_one_window_equals_the_direct_cross_entropy(make_model, tokenizer):
    model = make_model(vocab_size=259)
    text = "The cat sat on the mat. " * 3
    ids = tokenizer.encode(text)
    with torch.no_grad():
        logits, _ = model(torch.tensor([ids]))
    nll = float(F.cross_entropy(logits[0, :-1], torch.tensor(ids[1:]), reduction="sum"))
    r = evaluate_perplexity(InferenceModel.from_gpt(model), tokenizer, text, context=128)
    assert r.tokens == len(ids) - 1 and r.bytes == len(text.encode()) - 1
    assert r.nll == pytest.approx(nll, rel=1e-4)
    assert r.perplexity == pytest.approx(math.exp(nll / r.tokens), rel=1e-4)
    assert r.bits_per_byte == pytest.approx(nll / math.log(2) / r.bytes, rel=1e-4)


def test_sliding_windows_score_every_token_once(make_model, tokenizer):
    im = InferenceModel.from_gpt(make_model(vocab_size=259))
    text = "abcdefghij" * 30  # 300 byte tokens, more than one window
    r = evaluate_perplexity(im, tokenizer, text, context=64, stride=16)
    assert r.tokens == 299
    full = evaluate_perplexity(im, tokenizer, text, context=128, stride=128)
    assert full.tokens == 299


def test_bad_arguments_are_data_errors(make_model, tokenizer):
    im = InferenceModel.from_gpt(make_model(vocab_size=259))
    with pytest.raises(DataError, match="too short"):
        evaluate_perplexity(im, tokenizer, "a")
    with pytest.raises(DataError, match="maximum context 128"):
        evaluate_perplexity(im, tokenizer, "abc" * 10, context=500)
