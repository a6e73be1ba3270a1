"""Speculative decoding: greedy output identical to the target's, sampling distributed like the target's."""

import math

import pytest
import torch

from llm.errors import InferenceError
from llm.infer.drafters import ModelDrafter, PromptLookupDrafter, check_same_tokenizer
from llm.infer.engine import Engine
from llm.infer.inference_model import InferenceModel
from llm.infer.sampling import SamplingParams, target_probs
from llm.infer.speculative import SpeculativeDecoder, accept_drafts, predicted_speedup
from llm.model import GPT
from llm.tokenizer import Tokenizer

PROMPTS = [[3, 14, 15, 92, 65], [7] * 9, [1, 2, 3, 1, 2, 3, 1, 2], [200, 150, 100, 50]]


def layer_skip_draft(target: GPT) -> GPT:
    """The target's first block alone, with its embeddings, final norm and head: a draft that
    agrees with the target often but not always (self-speculation as in LayerSkip, Elhoushi
    et al. 2024). A random unrelated draft is never accepted, so it cannot test rollback."""
    n = target.config.n_layers
    draft = GPT(target.config.model_copy(update={"n_layers": n - 1})).eval()
    draft.load_state_dict({k: v for k, v in target.state_dict().items() if not k.startswith(f"blocks.{n - 1}.")})
    return draft


class RecordingDrafter(ModelDrafter):
    """A ModelDrafter that keeps every (context, drafts) pair it produced."""

    def __init__(self, model: InferenceModel) -> None:
        super().__init__(model)
        self.calls: list[tuple[list[int], list[int]]] = []

    def propose(self, tokens, k, params, generator):
        drafts, q = super().propose(tokens, k, params, generator)
        self.calls.append((list(tokens), drafts))
        return drafts, q


@torch.inference_mode()
def naive_greedy(model: GPT, context: list[int], n: int) -> list[int]:
    """n greedy tokens the slow way: a full forward pass per token, no cache."""
    ids = list(context)
    for _ in range(n):
        logits, _ = model(torch.tensor([ids]))
        ids.append(int(logits[0, -1].argmax()))
    return ids[len(context):]


@pytest.mark.parametrize("gamma", [1, 3, 6])
def test_model_draft_greedy_equals_target_greedy(gamma, make_model):
    """Partly accepted drafts: the output is still the target's, and after every rejection the
    draft's cache is rolled back so that its next proposals are what it would propose afresh."""
    target = make_model(seed=10, sharp=8.0)
    draft = layer_skip_draft(target)
    engine = Engine(target)
    params = SamplingParams(max_tokens=24)
    for prompt in PROMPTS:
        plain = engine.generate(prompt, params)[0].tokens
        drafter = RecordingDrafter(InferenceModel.from_gpt(draft))
        dec = SpeculativeDecoder(drafter, gamma=gamma)
        assert engine.generate(prompt, params, decoder=dec)[0].tokens == plain
        st = dec.stats
        assert 0 < st.accepted < st.proposed, (prompt, st)  # some drafts kept, some rejected
        assert st.rejections > 0 and st.rounds < len(plain) - 1  # fewer target passes than tokens
        for context, drafts in drafter.calls:
            assert drafts == naive_greedy(draft, context, len(drafts)), (prompt, len(context))


def test_a_draft_identical_to_the_target_is_always_accepted(make_model):
    target = make_model(seed=12, sharp=8.0)
    engine = Engine(target)
    dec = SpeculativeDecoder(ModelDrafter(InferenceModel.from_gpt(target)), gamma=4)
    out = engine.generate(PROMPTS[0], SamplingParams(max_tokens=21), decoder=dec)[0]
    assert len(out.tokens) == 21
    assert dec.stats.alpha == 1.0 and dec.stats.rounds == 4  # 1 from the prefill, then 5 per round


class RecordingLookup(PromptLookupDrafter):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[list[int], list[int]]] = []

    def propose(self, tokens, k, params, generator):
        drafts, q = super().propose(tokens, k, params, generator)
        self.calls.append((list(tokens), drafts))
        return drafts, q


def copied_from_context(context: list[int], drafts: list[int]) -> bool:
    """`drafts` is what followed an earlier occurrence of the context's last token."""
    n = len(drafts)
    return any(context[i - 1] == context[-1] and context[i : i + n] == drafts for i in range(1, len(context) - n + 1))


def test_prompt_lookup_greedy_equals_target_greedy_and_copies(make_model):
    engine = Engine(make_model(seed=13, sharp=8.0))
    params = SamplingParams(max_tokens=30)
    for gamma in (2, 5):
        for prompt in PROMPTS:
            drafter = RecordingLookup()
            dec = SpeculativeDecoder(drafter, gamma=gamma, adaptive=gamma == 5)
            plain = engine.generate(prompt, params)[0].tokens
            assert engine.generate(prompt, params, decoder=dec)[0].tokens == plain
            # The output repeats itself, so lookup really copies and the target really accepts.
            assert dec.stats.accepted > 0 and dec.stats.rounds < len(plain) - 1, (prompt, dec.stats)
            proposals = [(ctx, d) for ctx, d in drafter.calls if d]
            assert proposals and all(copied_from_context(ctx, d) for ctx, d in proposals)


def test_prompt_lookup_proposes_the_continuation_of_the_latest_match():
    d = PromptLookupDrafter(max_ngram=2)
    params = SamplingParams()
    assert d.propose([1, 2, 3, 4, 9, 1, 2, 3, 5, 1, 2], 3, params, None)[0] == [3, 5, 1]
    assert d.propose([1, 2, 3], 3, params, None)[0] == []


def chi_square(counts: torch.Tensor, probs: torch.Tensor) -> tuple[float, int]:
    """Pearson statistic over cells with expected count >= 5 (the rest pooled) and its degrees of freedom."""
    n = counts.sum()
    expected = probs * n
    big = expected >= 5
    obs = torch.cat([counts[big], counts[~big].sum().unsqueeze(0)])
    exp = torch.cat([expected[big], expected[~big].sum().unsqueeze(0)])
    keep = exp > 0
    stat = float(((obs[keep] - exp[keep]) ** 2 / exp[keep]).sum())
    return stat, int(keep.sum()) - 1


def chi2_critical(dof: int) -> float:
    """Upper 0.001 quantile of chi-square (Wilson-Hilferty approximation)."""
    z = 3.09
    return dof * (1 - 2 / (9 * dof) + z * math.sqrt(2 / (9 * dof))) ** 3


def test_greedy_acceptance_keeps_drafts_up_to_the_first_mismatch():
    """The rule the engine's decoder and the server's runner share: the target's argmax wins."""
    logits = torch.full((4, 6), -1.0)
    for row, best in enumerate([3, 1, 4, 2]):  # the target's argmax after each position
        logits[row, best] = 1.0
    greedy = SamplingParams()
    assert accept_drafts(logits, [3, 1, 4], greedy) == ([3, 1, 4, 2], 3)  # all kept, plus a bonus token
    assert accept_drafts(logits, [3, 5, 4], greedy) == ([3, 1], 1)  # the target's own token at the mismatch
    assert accept_drafts(logits[:1], [], greedy) == ([3], 0)


@pytest.mark.parametrize("drafter", ["model", "deterministic"])
def test_rejection_sampling_reproduces_the_target_distribution(drafter):
    """Leviathan et al. theorem: whatever q is, accepted-or-resampled tokens are distributed as p."""
    torch.manual_seed(0)
    V, N = 8, 20000
    params = SamplingParams(temperature=1.0)
    logits = torch.randn(3, V) * 1.5  # target rows for draft positions 0, 1 and the bonus
    p = target_probs(logits, params)
    q = torch.softmax(torch.randn(2, V) * 1.5, -1)  # a different draft distribution
    gen = torch.Generator().manual_seed(1)
    first = torch.zeros(V)
    second = torch.zeros(V)
    for _ in range(N):
        if drafter == "model":
            drafts = [int(torch.multinomial(q[i], 1, generator=gen)) for i in range(2)]
            out, _ = accept_drafts(logits, drafts, params, q, None, gen)
        else:
            drafts = [2, 5]  # e.g. prompt lookup: q is one-hot
            out, _ = accept_drafts(logits, drafts, params, None, None, gen)
        first[out[0]] += 1
        if len(out) > 1 and out[0] == drafts[0]:
            second[out[1]] += 1  # the next token, given the first draft was accepted
    for counts, probs in ((first, p[0]), (second, p[1])):
        stat, dof = chi_square(counts, probs)
        assert stat < chi2_critical(dof), (stat, dof, counts / counts.sum(), probs)


def test_speculative_sampling_end_to_end_matches_the_target(make_model):
    """Two tokens after a prompt, many seeds: the joint distribution is the target's."""
    V = 6
    target = make_model(seed=20, sharp=3.0, vocab_size=V)
    draft = make_model(seed=21, sharp=3.0, vocab_size=V, n_layers=1)
    engine = Engine(target)
    params = dict(temperature=1.0, max_tokens=2)
    im = engine.model
    prompt = [1, 2, 3]
    with torch.no_grad():
        p1 = target_probs(im(torch.tensor([prompt]), torch.arange(3))[:, -1], SamplingParams(temperature=1.0))[0]
        joint = torch.zeros(V, V)
        for a in range(V):
            row = im(torch.tensor([prompt + [a]]), torch.arange(4))[:, -1]
            joint[a] = p1[a] * target_probs(row, SamplingParams(temperature=1.0))[0]
    counts = torch.zeros(V, V)
    dec = SpeculativeDecoder(ModelDrafter(InferenceModel.from_gpt(draft)), gamma=2)
    for seed in range(3000):
        a, b = engine.generate(prompt, SamplingParams(seed=seed, **params), decoder=dec)[0].tokens
        counts[a, b] += 1
    stat, dof = chi_square(counts.flatten(), joint.flatten())
    assert stat < chi2_critical(dof)


def test_draft_with_another_tokenizer_is_refused(make_model, tokenizer):
    other = Tokenizer(r"""[\s\S]""", {bytes([i]): i for i in range(256)}, {"<|endoftext|>": 256}, name="other")
    with pytest.raises(InferenceError, match="differs from the target"):
        check_same_tokenizer(tokenizer, other)
    engine = Engine(make_model(), tokenizer)
    dec = SpeculativeDecoder(ModelDrafter(InferenceModel.from_gpt(make_model(seed=1)), other))
    with pytest.raises(InferenceError, match="same tokenizer"):
        engine.generate([1, 2, 3], decoder=dec)


def test_gamma_bounds_and_the_speedup_formula():
    with pytest.raises(InferenceError, match="between 1 and"):
        SpeculativeDecoder(PromptLookupDrafter(), gamma=0)
    assert predicted_speedup(0.0, 4, 0.0) == pytest.approx(1.0)
    assert predicted_speedup(0.8, 4, 0.0) == pytest.approx((1 - 0.8**5) / 0.2)
    assert predicted_speedup(0.8, 4, 0.1) < predicted_speedup(0.8, 4, 0.0)
