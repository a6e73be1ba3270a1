"""The Mixture-of-Experts layer: grouped dispatch against the textbook loop, balancing, capacity, config errors."""

import pytest
import torch

from llm.config import ModelConfig, MoEConfig
from llm.errors import ConfigError
from llm.model import GPT, FeedForward
from llm.moe import MoE, balance_loss, max_violation, moe_layers
from llm.train.bench_moe import random_moe_layer
from llm.train.config import load_train_config


def tiny(**moe) -> ModelConfig:
    return ModelConfig(vocab_size=64, d_model=32, n_layers=2, n_heads=2, ffn_hidden=48, max_seq_len=32, moe=moe)


def layer(**moe) -> MoE:
    return random_moe_layer(tiny(**moe), std=0.2)


def run(m: MoE, x: torch.Tensor, dispatch: str):
    m.dispatch = dispatch
    m.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_(True)
    y = m(x)
    y.square().sum().backward()
    m.reset_stats()
    return y.detach(), x.grad, {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}


@pytest.mark.parametrize(
    "spec",
    [
        dict(n_experts=4, top_k=1),
        dict(n_experts=4, top_k=2, n_shared=1),
        dict(n_experts=8, top_k=3, expert_hidden=16, router="sigmoid"),
        dict(n_experts=6, top_k=2, capacity_factor=0.5),
    ],
)
def test_grouped_dispatch_equals_the_textbook_loop(spec):
    m = layer(**spec)
    x = torch.randn(3, 20, 32)
    ya, gxa, ga = run(m, x, "grouped")
    yb, gxb, gb = run(m, x, "loop")
    torch.testing.assert_close(ya, yb, atol=1e-5, rtol=0)
    torch.testing.assert_close(gxa, gxb, atol=1e-5, rtol=0)
    assert ga.keys() == gb.keys() and "router.weight" in ga and any(k.startswith("experts.") for k in ga)
    for k in ga:  # the two sum in different orders: float32 rounding on large weight gradients
        torch.testing.assert_close(ga[k], gb[k], atol=1e-5, rtol=1e-5)
    assert ga["router.weight"].abs().sum() > 0  # the router learns from the task loss


def test_one_expert_top1_is_the_dense_mlp():
    m = layer(n_experts=1, top_k=1)
    x = torch.randn(2, 5, 32)
    torch.testing.assert_close(m(x), m.experts[0](x), atol=1e-6, rtol=0)


def test_balance_loss_closed_form():
    # 4 tokens, 2 experts, top-1: expert 0 gets 3 of the 4 tokens
    probs = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.3, 0.7]])
    idx = probs.argmax(-1, keepdim=True)
    f = torch.tensor([0.75, 0.25])
    P = torch.tensor([2.6, 1.4]) / 4
    expected = 2 * (f * P).sum()  # = 2 * (0.4875 + 0.0875) = 1.15
    assert float(balance_loss(probs, idx, 2)) == pytest.approx(float(expected)) == pytest.approx(1.15)
    uniform = torch.full((4, 2), 0.5)
    assert float(balance_loss(uniform, torch.tensor([[0], [1], [0], [1]]), 2)) == pytest.approx(1.0)
    assert max_violation(torch.tensor([3.0, 1.0])) == pytest.approx(0.5)


def test_bias_changes_selection_only_and_gets_no_gradient():
    m = layer(n_experts=4, top_k=1, balance="aux_free")
    x = torch.randn(10, 32)
    _, probs, idx, gates = m.route(x)
    with torch.no_grad():
        m.router_bias[3] = 10.0
    _, probs_b, idx_b, gates_b = m.route(x)
    assert (idx_b == 3).all() and not (idx == 3).all()
    torch.testing.assert_close(probs_b, probs)  # the affinities are unchanged
    torch.testing.assert_close(gates_b[:, 0], probs[:, 3])  # the gate is p_3, not p_3 + b_3
    m(x).sum().backward()
    assert m.router_bias.grad is None and not m.router_bias.requires_grad
    assert m.router.weight.grad is not None


def test_bias_update_sign_rule():
    m = layer(n_experts=4, top_k=1, balance="aux_free", bias_update_rate=0.01)
    m.update_bias(torch.tensor([10.0, 2.0, 4.0, 0.0]))  # mean 4
    assert m.router_bias.tolist() == pytest.approx([-0.01, 0.01, 0.0, 0.01])
    other = layer(n_experts=4, top_k=1, balance="none")
    other.update_bias(torch.tensor([10.0, 2.0, 4.0, 0.0]))
    assert other.router_bias.abs().sum() == 0


def _skewed_maxvio(balance: str, steps: int = 100) -> tuple[float, float]:
    """MaxVio of a router skewed towards expert 0, before and after `steps` bias updates."""
    m = layer(n_experts=4, top_k=1, balance=balance, bias_update_rate=0.02)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        m.router.weight.copy_(0.3 * torch.randn(4, 32, generator=g))
        m.router.weight[0, 0] = 2.0  # with x_0 shifted by +2 below, expert 0 wins most tokens
    vio = []
    for _ in range(steps):
        x = torch.randn(256, 32, generator=g)
        x[:, 0] += 2.0
        with torch.no_grad():
            idx = m.route(x)[2]
        load = torch.bincount(idx.reshape(-1), minlength=4).float()
        vio.append(max_violation(load))
        m.update_bias(load)
    return sum(vio[:5]) / 5, sum(vio[-5:]) / 5


def test_aux_free_bias_lowers_maxvio_on_a_skewed_router_while_none_does_not():
    before, after = _skewed_maxvio("aux_free")
    assert before > 1.0 and after < before / 3
    before_none, after_none = _skewed_maxvio("none")
    assert after_none == pytest.approx(before_none, rel=0.3)


def test_capacity_drops_are_counted():
    m = layer(n_experts=2, top_k=1, capacity_factor=0.5)  # capacity ceil(0.5 * 8 / 2) = 2 per expert
    with torch.no_grad():
        m.router.weight.zero_()
        m.router_bias.copy_(torch.tensor([1.0, 0.0]))  # every token picks expert 0
    x = torch.randn(8, 32)
    keep = m.capacity_mask(m.route(x)[2])
    assert keep.reshape(-1).tolist() == [True, True] + [False] * 6  # the first tokens keep their slot
    m.reset_stats()
    y = m(x)
    _, sums = m.take_stats()
    assert sums.tolist()[2] == 6  # six dropped assignments
    assert torch.all(y[2:] == 0) and torch.all(y[:2] != 0)  # dropped tokens get no expert output
    m.eval()  # inference never drops
    assert m.capacity_mask(m.route(x)[2]) is None


def test_gpt_with_moe_layers_counts_params_and_keeps_dense_layers():
    cfg = tiny(n_experts=4, top_k=2, n_shared=1, expert_hidden=16, layers=[1])
    model = GPT(cfg)
    assert sum(p.numel() for p in model.parameters()) == cfg.num_params()
    assert isinstance(model.blocks[0].ffn, FeedForward) and len(moe_layers(model)) == 1
    assert cfg.num_params(active=True) == cfg.num_params() - 2 * 3 * 32 * 16 - 4
    assert float(model.blocks[1].ffn.router_bias.abs().sum()) == 0.0
    dense = ModelConfig(vocab_size=64, d_model=32, n_layers=2, n_heads=2, ffn_hidden=48)
    assert dense.ffn_kind == "dense" and dense.num_params(active=True) == dense.num_params()


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["model.moe.top_k=9"], "moe.top_k must be between 1 and moe.n_experts"),
        (["model.moe.n_experts=0"], "moe.n_experts must be >= 1"),
        (["model.moe.balance=magic"], "moe.balance"),
        (["model.moe.router=relu"], "moe.router"),
        (["model.moe.capacity_factor=0"], "moe.capacity_factor must be > 0"),
        (["model.moe.layers=[7]"], "moe.layers [7] out of range"),
        (["model.moe.n_expert=3"], "n_expert"),
    ],
)
def test_bad_moe_config_is_one_line_naming_the_field(overrides, message):
    with pytest.raises(ConfigError) as e:
        load_train_config(None, ["model.preset=nano-moe", *overrides]).model.build()
    assert message in str(e.value) and "\n" not in str(e.value)


def test_preset_overrides_merge_into_the_moe_block():
    cfg = load_train_config(None, ["model.preset=nano-moe", "model.moe.top_k=4"]).model.build()
    assert (cfg.moe.top_k, cfg.moe.n_experts, cfg.moe.expert_hidden) == (4, 8, 192)
    dense = load_train_config(None, ["model.preset=nano-moe", "model.moe=null"]).model.build()
    assert dense.moe is None and dense.ffn_kind == "dense"
    on = load_train_config(None, ["model.preset=nano", "model.moe.n_experts=4"]).model.build()
    assert on.ffn_kind == "moe" and on.moe == MoEConfig(n_experts=4)


def test_lora_on_moe_ffn_targets_is_a_one_line_error():
    from llm.config import AdapterConfig
    from llm.lora import apply_lora

    with pytest.raises(ConfigError, match="LoRA target 'gate' needs a dense feed-forward"):
        apply_lora(GPT(tiny(n_experts=2, top_k=1)), AdapterConfig(rank=2, alpha=4, targets=["q", "gate"]))
