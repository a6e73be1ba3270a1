// Python bindings of the native decoding kernels (built by llm/infer/kernels.py).
#include "kernels.h"

#include <torch/extension.h>

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  using namespace llm_kernels;
  m.def("gemv_f32", &gemv_f32, "y = x @ w.T for float32 w (N, K) and x (M, K)");
  m.def("gemv_bf16", &gemv_bf16, "y = x @ w.T for bf16 w (N, K) and float32 x (M, K)");
  m.def("gemv_int8", &gemv_int8, "y = x @ dequant(q, scale).T, int8 weights with a float16 scale per group");
  m.def("gemv_int4", &gemv_int4, "y = x @ dequant(p, scale, min).T, packed int4 weights with scale/min per group");
  m.def("int4_row_multiple", &int4_row_multiple, "gemv_int4 needs K to be a multiple of this");
  m.def("rms_norm", &rms_norm, "x / rms(x) * w over the last dimension");
  m.def("silu_mul", &silu_mul, "silu(gu[:, :F]) * gu[:, F:]");
  m.def("rope_", &rope_, "rotate interleaved pairs of the first n_heads heads of qkv in place");
  m.def("attention", &attention, "causal attention of few queries over a KV prefix");
  m.def("attention_paged", &attention_paged, "the same attention reading K/V through a block table");
  pybind11::class_<DecodeLayers>(m, "DecodeLayers")
      .def(pybind11::init<int64_t, int64_t, int64_t, double, at::Tensor, at::Tensor>())
      .def("add_layer", &DecodeLayers::add_layer, "append a layer's norms and matrices")
      .def("forward", &DecodeLayers::forward, pybind11::call_guard<pybind11::gil_scoped_release>(),
           "x after every layer, writing the new keys/values into the cache")
      .def("__len__", &DecodeLayers::size);
  m.def("isa", &isa, "instruction set the kernels were compiled for");
  m.def("parallel_workers", &parallel_workers, "threads one at::parallel_for actually runs on");
}
