"""INT8/INT4 weight-only quantization: error bounds, packing, module swap, saved checkpoints."""

import pytest
import torch

from llm.checkpoint import make_meta
from llm.errors import InferenceError
from llm.infer.inference_model import InferenceModel
from llm.infer.kernels import unpack_int4
from llm.infer.quantize import QuantConfig, _pack_int4, quantize_int4, quantize_int8, quantize_model
from llm.infer.quantized_checkpoint import is_quantized_checkpoint, load_quantized, quantize_checkpoint, save_quantized


def test_int8_error_is_at_most_half_a_step_per_row():
    torch.manual_seed(0)
    w = torch.randn(64, 96) * torch.rand(64, 1) * 3  # rows of different scales
    q = quantize_int8(w)
    step = q.scale.float()  # (N, 1)
    assert ((q.dequantize() - w).abs() <= step / 2 * (1 + 1e-3) + 1e-7).all()
    assert q.q.dtype == torch.int8 and q.q.abs().max() <= 127


def test_int8_groups_have_their_own_scales():
    w = torch.cat([torch.full((4, 32), 0.01), torch.full((4, 32), 10.0)], dim=1)
    q = quantize_int8(w, 32)
    assert q.scale.shape == (4, 2)
    assert (q.dequantize() - w).abs().max() < 1e-3 * 10


def test_int4_packs_two_codes_per_byte_in_gguf_order():
    q = torch.randint(0, 16, (3, 64), dtype=torch.uint8)
    p = _pack_int4(q)
    assert p.shape == (3, 32)
    assert torch.equal(p[:, 0] & 0xF, q[:, 0]) and torch.equal(p[:, 0] >> 4, q[:, 16])  # byte i: weights i, i+16
    assert torch.equal(unpack_int4(p), q)


@pytest.mark.parametrize("group", [32, 64, 128])
def test_int4_error_is_no_worse_than_the_plain_min_max_grid(group):
    torch.manual_seed(group)
    w = torch.randn(48, 256)
    deq = quantize_int4(w, group).dequantize()
    g = w.view(48, -1, group)
    lo, hi = g.amin(-1, keepdim=True), g.amax(-1, keepdim=True)
    s = (hi - lo) / 15
    plain = ((g - lo) / s).round().clamp(0, 15) * s + lo
    err = ((deq.view_as(g) - g) ** 2).sum(-1)
    plain_err = ((plain - g) ** 2).sum(-1)
    assert (err <= plain_err * 1.01 + 1e-6).all()  # the search keeps the min/max grid as a candidate
    assert float((deq - w).norm() / w.norm()) < 0.12


def test_int4_falls_back_to_a_group_that_divides_the_row():
    q = quantize_int4(torch.randn(8, 192), 128)  # 192 = 3 x 64
    assert q.group_size == 64


def test_unsupported_options_list_the_valid_ones():
    with pytest.raises(InferenceError, match="valid: 8, 4"):
        QuantConfig(bits=3)
    with pytest.raises(InferenceError, match="valid: 32, 64, 128"):
        QuantConfig(bits=4, group_size=48)


@pytest.mark.parametrize("bits", [8, 4])
def test_quantized_model_stays_close_to_float(bits, make_model):
    model = make_model(seed=2)
    ids = torch.randint(0, 300, (1, 16))
    ref, _ = model(ids)
    quantize_model(model, QuantConfig(bits, 32 if bits == 4 else None))
    out, _ = model(ids)  # the reference GPT code runs the swapped modules
    fast = InferenceModel.from_gpt(model)(ids, torch.arange(16))
    tol = 0.05 if bits == 8 else 0.25
    assert (out - ref).abs().max() < tol * ref.abs().max()
    assert (fast - out).abs().max() < 1e-3 * out.abs().max()


@pytest.mark.parametrize("bits", [8, 4])
def test_saved_and_loaded_quantized_checkpoint_gives_identical_outputs(bits, nano_checkpoint, tmp_path):
    out = quantize_checkpoint(nano_checkpoint, tmp_path / f"q{bits}", QuantConfig(bits))
    assert is_quantized_checkpoint(out) and not is_quantized_checkpoint(nano_checkpoint)
    from llm.checkpoint import load_checkpoint

    ck = load_checkpoint(nano_checkpoint)
    quantize_model(ck.model, QuantConfig(bits))
    loaded = load_quantized(out)
    assert loaded.meta["quantization"]["bits"] == bits
    ids = torch.randint(0, 512, (2, 12))
    a, _ = ck.model(ids)
    b, _ = loaded.model(ids)
    assert torch.equal(a, b)
    fa = InferenceModel.from_gpt(ck.model)(ids, torch.arange(12))
    fb = InferenceModel.from_gpt(loaded.model)(ids, torch.arange(12))
    assert torch.equal(fa, fb)
    # Re-saving the loaded model round-trips too, and quantizing twice is refused.
    save_quantized(tmp_path / "again", loaded.model, loaded.config, loaded.tokenizer, make_meta("quantize"))
    with pytest.raises(Exception, match="already quantized"):
        quantize_checkpoint(out, tmp_path / "twice", QuantConfig(bits))


@pytest.mark.model
def test_gguf_import_keeps_the_files_bits(tmp_path):
    from llm.checkpoint import load_checkpoint
    from llm.hub import REGISTRY, resolve_model, source_file
    from llm.infer.gguf_quantized import import_gguf_quantized

    gguf = source_file(REGISTRY["smollm2-135m-instruct"])
    if not gguf.exists():
        pytest.skip(f"{gguf} not present")
    kept = load_quantized(import_gguf_quantized(gguf, tmp_path / "kept"))
    flt = load_checkpoint(resolve_model("smollm2-135m-instruct"))
    # Same numbers: the float import dequantized exactly these blocks.
    wq = kept.model.blocks[3].attn.wq.linear_weight()
    assert wq.kind == "int4/g32"
    assert torch.equal(wq.dequantize(), flt.model.blocks[3].attn.wq.weight.detach())
    assert kept.model.tok_emb.linear_weight().kind == "int8/g32"
    ids = torch.tensor([flt.tokenizer.encode("The capital of France is")])
    a = InferenceModel.from_gpt(flt.model)(ids, torch.arange(ids.shape[1]))
    b = InferenceModel.from_gpt(kept.model)(ids, torch.arange(ids.shape[1]))
    assert torch.equal(a.argmax(-1), b.argmax(-1)) and (a - b).abs().max() < 0.05 * a.abs().max()


def test_plain_checkpoint_loader_names_the_loader_for_a_quantized_dir(nano_checkpoint, tmp_path):
    from llm.checkpoint import load_checkpoint
    from llm.errors import CheckpointError
    from llm.infer.loading import load_model

    out = quantize_checkpoint(nano_checkpoint, tmp_path / "q8", QuantConfig(8))
    with pytest.raises(CheckpointError, match="quantized checkpoint.*llm.infer.loading.load_model"):
        load_checkpoint(out)
    assert is_quantized_checkpoint(load_model(str(out)).path)  # the general loader takes it
