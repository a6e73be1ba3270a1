// Native CPU kernels for decoding (see gemv.cpp and decode_ops.cpp); bound to Python in bindings.cpp.
#pragma once

#include <ATen/ATen.h>

#include <string>

namespace llm_kernels {

// y (M, N) = x (M, K) float32 @ W^T for packed W; formats in gemv.cpp.
at::Tensor gemv_f32(const at::Tensor& x, const at::Tensor& w);
at::Tensor gemv_bf16(const at::Tensor& x, const at::Tensor& w);
at::Tensor gemv_int8(const at::Tensor& x, const at::Tensor& q, const at::Tensor& scale);
at::Tensor gemv_int4(const at::Tensor& x, const at::Tensor& p, const at::Tensor& scale, const at::Tensor& minv);
// gemv_int4 needs K to be a multiple of this.
int64_t int4_row_multiple();

// y = x / rms(x) * w over the last dimension of a float32 (M, D) tensor.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& w, double eps);
// silu(gu[:, :F]) * gu[:, F:] for gu (M, 2F).
at::Tensor silu_mul(const at::Tensor& gu);
// Rotates interleaved pairs of the first n_heads * E columns of qkv (B, T, C) in place by the
// angles of `positions` (B, T), with cos/sin tables (max_len, E/2).
void rope_(at::Tensor& qkv, const at::Tensor& positions, const at::Tensor& cos, const at::Tensor& sin,
           int64_t n_heads, int64_t head_dim);
// Causal attention for few queries: q (B, H, T, E), k/v (B, Kh, S, E) with H a multiple of Kh;
// query (b, t) attends keys 0..limits[b, t]. Returns (B, T, H, E).
at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& limits);
// The same over a paged pool: pool_k/pool_v (blocks, block size, Kh, E), blocks (B, n) the block
// table of each row (key j of row b is slot j % block size of block blocks[b, j / block size]).
at::Tensor attention_paged(const at::Tensor& q, const at::Tensor& pool_k, const at::Tensor& pool_v,
                           const at::Tensor& blocks, const at::Tensor& limits);

std::string isa();
int64_t parallel_workers();

}  // namespace llm_kernels
