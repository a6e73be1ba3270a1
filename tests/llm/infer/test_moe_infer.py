"""Mixture-of-Experts checkpoints in inference: the engine's model equals the GPT, checkpoints round-trip,
and quantization packs every expert (the router stays float) within tolerance of float."""

import pytest
import torch
import torch.nn as nn

from llm.checkpoint import make_meta, save_checkpoint
from llm.infer.engine import Engine
from llm.infer.inference_model import InferenceModel
from llm.infer.loading import load_model
from llm.infer.quantize import QuantConfig, QuantizedLinear, quantize_model
from llm.infer.quantized_checkpoint import quantize_checkpoint
from llm.infer.sampling import SamplingParams
from llm.moe import moe_layers

MOE = dict(n_experts=4, top_k=2, n_shared=1, expert_hidden=64, balance="aux_free", capacity_factor=1.0)


@pytest.fixture
def moe_model(make_model):
    def make():
        model = make_model(0, moe=MOE)
        with torch.no_grad():
            moe_layers(model)[0].router_bias.copy_(torch.tensor([0.05, -0.05, 0.0, 0.02]))
        return model

    return make


def test_inference_model_matches_the_gpt_and_generates(moe_model, tokenizer, tmp_path):
    model = moe_model()
    tokens = torch.randint(0, 300, (2, 9))
    with torch.no_grad():
        ref, _ = model(tokens)
    fast = InferenceModel.from_gpt(model)
    torch.testing.assert_close(fast(tokens, torch.arange(9)), ref, atol=1e-4, rtol=1e-4)
    path = save_checkpoint(tmp_path / "moe", model, model.config, tokenizer, make_meta("pretrain"))
    ck = load_model(str(path))
    assert ck.config.moe == model.config.moe
    assert moe_layers(ck.model)[0].router_bias.tolist() == moe_layers(model)[0].router_bias.tolist()
    with torch.no_grad():
        torch.testing.assert_close(ck.model(tokens)[0], ref, atol=0, rtol=0)
    out = Engine(ck.model).generate([1, 2, 3], SamplingParams(max_tokens=6, temperature=0.0))[0]
    greedy, ids = [], [1, 2, 3]
    with torch.no_grad():
        for _ in range(6):
            ids.append(int(model(torch.tensor([ids]))[0][0, -1].argmax()))
            greedy.append(ids[-1])
    assert out.tokens == greedy


def test_quantized_moe_packs_experts_and_stays_close_to_float(moe_model, tokenizer, tmp_path):
    model = moe_model()
    tokens = torch.randint(0, 300, (1, 12))
    with torch.no_grad():
        ref = model(tokens)[0]
    path = save_checkpoint(tmp_path / "moe", model, model.config, tokenizer, make_meta("pretrain"))
    q8 = quantize_checkpoint(path, tmp_path / "moe-q8", QuantConfig(bits=8, embeddings=False))
    ck = load_model(str(q8))
    layer = moe_layers(ck.model)[0]
    assert all(isinstance(e.w_gate, QuantizedLinear) and isinstance(e.w_down, QuantizedLinear) for e in layer.experts)
    assert isinstance(layer.shared.w_up, QuantizedLinear) and type(layer.router) is nn.Linear
    assert layer.router_bias.tolist() == moe_layers(model)[0].router_bias.tolist()
    with torch.no_grad():
        got = ck.model(tokens)[0]
    fast = InferenceModel.from_gpt(ck.model)(tokens, torch.arange(12))
    torch.testing.assert_close(fast, got, atol=1e-4, rtol=1e-4)
    err = (got - ref).abs().max() / ref.abs().max()
    assert err < 0.02, err
    q4 = quantize_model(moe_model(), QuantConfig(bits=4, group_size=32, embeddings=False))
    assert moe_layers(q4)[1].experts[3].w_up.linear_weight().kind == "int4/g32"
    with torch.no_grad():
        err4 = (q4(tokens)[0] - ref).abs().max() / ref.abs().max()
    assert err4 < 0.2, err4  # random weights: int4 keeps ~90% of each matrix's precision


def test_hf_export_refuses_an_moe_checkpoint(moe_model, tokenizer, tmp_path):
    from llm.errors import CheckpointError
    from llm.export.hf import export_hf

    model = moe_model()
    path = save_checkpoint(tmp_path / "moe", model, model.config, tokenizer, make_meta("pretrain"))
    with pytest.raises(CheckpointError, match="Mixture-of-Experts"):
        export_hf(path, tmp_path / "hf")
