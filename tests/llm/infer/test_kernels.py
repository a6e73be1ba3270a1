"""Native kernels against their PyTorch references (skipped only when no C++ toolchain exists)."""

import shutil

import pytest
import torch

from llm.infer import kernels
from llm.infer.quantize import quantize_int4, quantize_int8

pytestmark = pytest.mark.skipif(shutil.which("c++") is None or shutil.which("ninja") is None, reason="no C++ toolchain")


@pytest.fixture(scope="module")
def ext():
    ext = kernels.native_kernels()
    assert ext is not None, kernels.kernel_status()  # a machine with a compiler must build the kernels
    return ext


def reference(fn, *args):
    with kernels.force_reference():
        return fn(*args)


def close(a, b, rel):
    scale = b.abs().max().clamp(min=1e-6)
    return float((a - b).abs().max() / scale) < rel


@pytest.mark.parametrize("M", [1, 3, 4, 7, 16])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_float_gemv_matches_torch(ext, M, dtype):
    torch.manual_seed(M)
    x, w = torch.randn(M, 200), torch.randn(96, 200).to(dtype)  # K not a multiple of 16: scalar tail
    assert close(kernels.linear_float(x, w), reference(kernels.linear_float, x, w), 1e-5)


@pytest.mark.parametrize("M", [1, 2, 5, 9])
@pytest.mark.parametrize("group", [None, 32, 64])
def test_int8_gemv_matches_dequantized_matmul(ext, M, group):
    torch.manual_seed(M)
    w, x = torch.randn(80, 256), torch.randn(M, 256) * torch.rand(1, 256) * 4  # uneven magnitudes
    q = quantize_int8(w, group)
    native = kernels.linear_int8(x, q.q, q.scale)
    assert close(native, reference(kernels.linear_int8, x, q.q, q.scale), 2e-4)


@pytest.mark.parametrize("M", [1, 3, 6])
@pytest.mark.parametrize("group", [32, 64, 128])
def test_int4_gemv_matches_dequantized_matmul(ext, M, group):
    torch.manual_seed(group + M)
    w, x = torch.randn(72, 384) * 0.1, torch.randn(M, 384)
    q = quantize_int4(w, group)
    native = kernels.linear_int4(x, q.p, q.scale, q.min)
    assert close(native, reference(kernels.linear_int4, x, q.p, q.scale, q.min), 2e-4)


def test_each_row_is_computed_the_same_alone_or_in_a_batch(ext):
    """Speculative verification relies on it: k rows at once give bit-identical results to k single rows."""
    torch.manual_seed(0)
    x = torch.randn(7, 192)
    w = torch.randn(64, 192)
    formats = [
        lambda v: kernels.linear_float(v, w),
        lambda v: kernels.linear_float(v, w.bfloat16()),
        lambda v: kernels.linear_int8(v, *(lambda q: (q.q, q.scale))(quantize_int8(w))),
        lambda v: kernels.linear_int4(v, *(lambda q: (q.p, q.scale, q.min))(quantize_int4(w, 64))),
    ]
    for f in formats:
        together = f(x)
        alone = torch.cat([f(x[i : i + 1]) for i in range(7)])
        assert torch.equal(together, alone)


def test_rms_norm_silu_mul_and_rope_match_reference(ext):
    torch.manual_seed(0)
    x, w = torch.randn(3, 5, 48), torch.rand(48) + 0.5
    assert close(kernels.rms_norm(x, w, 1e-5), reference(kernels.rms_norm, x, w, 1e-5), 1e-5)
    gu = torch.randn(2, 3, 40) * 4
    assert close(kernels.silu_mul(gu), reference(kernels.silu_mul, gu), 1e-5)
    from llm.model import precompute_rope

    cos, sin = precompute_rope(16, 64, 10000.0)
    qkv = torch.randn(2, 3, 5 * 16)
    pos = torch.tensor([[0, 1, 2], [7, 9, 63]])
    a, b = qkv.clone(), qkv.clone()
    kernels.rope_(a, pos, cos, sin, 4, 16)
    with kernels.force_reference():
        kernels.rope_(b, pos, cos, sin, 4, 16)
    assert close(a, b, 1e-6)
    assert torch.equal(a[..., 64:], qkv[..., 64:])  # the fifth head (values) is not rotated


@pytest.mark.parametrize("H,Kh", [(4, 4), (6, 2)])
def test_attention_matches_masked_sdpa(ext, H, Kh):
    torch.manual_seed(H)
    B, T, S, E = 2, 3, 40, 32
    q = torch.randn(B, T, H, E).transpose(1, 2)  # strided like the model's views
    cache_k, cache_v = torch.randn(B, Kh, 64, E), torch.randn(B, Kh, 64, E)
    k, v = cache_k[:, :, :S], cache_v[:, :, :S]
    limits = torch.tensor([[5, 6, 7], [37, 38, 39]])
    assert close(kernels.attention(q, k, v, limits), reference(kernels.attention, q, k, v, limits), 1e-5)


def test_kernels_run_on_every_thread_torch_is_given(ext):
    # at::parallel_for is an OpenMP pragma in ATen's headers: a build without -fopenmp runs
    # every native kernel on one thread, whatever torch.get_num_threads() says.
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert ext.parallel_workers() == 2
        torch.set_num_threads(1)
        assert ext.parallel_workers() == 1
    finally:
        torch.set_num_threads(before)
