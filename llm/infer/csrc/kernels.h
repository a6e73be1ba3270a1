// Native CPU kernels for decoding (see gemv.cpp and decode_ops.cpp); bound to Python in bindings.cpp.
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <vector>

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

// Keys/values of one layer addressed through a block table: key j of row b, KV head kh is at
// k + blocks[b * nb + j / block_size] * s_block + (j % block_size) * s_slot + kh * s_head.
struct KVBlocks {
  const float* k; const float* v; const int64_t* blocks;
  int64_t nb, block_size, s_block, s_slot, s_head, Kh;
};
// `attention` over such keys/values; rows may read up to nb * block_size keys.
at::Tensor attention_blocks(const at::Tensor& q, const KVBlocks& kv, const at::Tensor& limits);

// The layers of a model for decoding steps (fused_decode.cpp): weights held natively, and one
// `forward` call runs RMSNorm, QKV, RoPE, the cache write, attention, output projection and
// SwiGLU of every layer over x (B, T, D) at positions (B, T).
class DecodeLayers {
 public:
  DecodeLayers(int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, double eps, at::Tensor cos, at::Tensor sin);
  // Each matrix is [w] (float32 / bf16), [q, scale] (int8) or [p, scale, min] (int4), as in gemv.cpp.
  void add_layer(const at::Tensor& attn_norm, const std::vector<at::Tensor>& wqkv, const std::vector<at::Tensor>& wo,
                 const at::Tensor& ffn_norm, const std::vector<at::Tensor>& gate_up,
                 const std::vector<at::Tensor>& down);
  // k_cache/v_cache hold one layer per entry of dimension 0; blocks (B, nb) and the strides
  // address a layer's slots as in KVBlocks. Returns x after the last layer.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& positions, const at::Tensor& k_cache,
                     const at::Tensor& v_cache, const at::Tensor& blocks, int64_t block_size, int64_t s_block,
                     int64_t s_slot, int64_t s_head) const;
  int64_t size() const { return static_cast<int64_t>(layers_.size()); }

 private:
  struct Matrix {
    at::Tensor a, b, c;
    at::Tensor mul(const at::Tensor& x) const;
  };
  struct Layer {
    at::Tensor attn_norm;
    Matrix wqkv, wo;
    at::Tensor ffn_norm;
    Matrix gate_up, down;
  };
  static Matrix matrix(const std::vector<at::Tensor>& parts);
  int64_t H_, K_, E_;
  double eps_;
  at::Tensor cos_, sin_;
  std::vector<Layer> layers_;
};

std::string isa();
int64_t parallel_workers();

}  // namespace llm_kernels
