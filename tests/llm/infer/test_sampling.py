"""Sampling parameters: each knob changes the distribution the way it should."""

import pytest
import torch
from pydantic import ValidationError

from llm.infer.sampling import SamplingParams, draw, penalize, sample, seen_mask, target_probs

LOGITS = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0]])


def test_greedy_is_argmax_and_ignores_the_generator():
    assert int(sample(LOGITS, SamplingParams())[0]) == 0


def test_top_k_keeps_k_tokens():
    p = target_probs(LOGITS, SamplingParams(temperature=1.0, top_k=2))[0]
    assert (p > 0).sum() == 2 and p[:2].sum() == pytest.approx(1.0)


def test_top_p_keeps_the_smallest_prefix_reaching_p():
    full = torch.softmax(LOGITS[0], -1)
    p = target_probs(LOGITS, SamplingParams(temperature=1.0, top_p=float(full[0]) + 0.01))[0]
    assert (p > 0).sum() == 2  # the top token alone falls just short
    assert target_probs(LOGITS, SamplingParams(temperature=1.0, top_p=0.01))[0][0] == 1.0


def test_min_p_drops_tokens_far_below_the_top():
    full = torch.softmax(LOGITS[0], -1)
    p = target_probs(LOGITS, SamplingParams(temperature=1.0, min_p=0.3))[0]
    assert torch.equal(p > 0, full >= 0.3 * full[0])


def test_temperature_sharpens_and_flattens():
    cold = target_probs(LOGITS, SamplingParams(temperature=0.5))[0]
    hot = target_probs(LOGITS, SamplingParams(temperature=2.0))[0]
    assert cold[0] > torch.softmax(LOGITS[0], -1)[0] > hot[0]


def test_repetition_penalty_discourages_seen_tokens():
    seen = seen_mask([[0, 4]], 5)
    out = penalize(LOGITS, seen, 2.0)[0]
    assert out[0] == 1.0 and out[4] == -2.0 and out[1] == 1.0  # positive divided, negative multiplied
    assert int(sample(LOGITS, SamplingParams(repetition_penalty=3.0), seen)[0]) == 1


def test_seed_makes_sampling_reproducible():
    params = SamplingParams(temperature=1.0)
    logits = torch.zeros(1, 1000)
    draws = [int(sample(logits, params, generator=torch.Generator().manual_seed(7))[0]) for _ in range(3)]
    assert len(set(draws)) == 1


def test_invalid_params_are_rejected():
    with pytest.raises(ValidationError):
        SamplingParams(top_p=0.0)
    with pytest.raises(ValidationError):
        SamplingParams(temperature=-1)
    with pytest.raises(ValidationError):
        SamplingParams(unknown=1)


def test_sampling_draw_follows_the_distribution():
    probs = torch.tensor([0.1, 0.0, 0.6, 0.3])
    g = torch.Generator().manual_seed(0)
    counts = torch.bincount(torch.tensor([draw(probs, g) for _ in range(20000)]), minlength=4) / 20000
    assert counts[1] == 0  # a zero-probability token is never drawn
    torch.testing.assert_close(counts, probs, atol=0.015, rtol=0)
