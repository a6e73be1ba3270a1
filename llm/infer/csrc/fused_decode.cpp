// A decoding step's transformer layers in one native call: RMSNorm, QKV, RoPE, the KV-cache
// write, attention, output projection and SwiGLU of every layer, for fp32, bf16, int8 and int4
// weights.
//
// Once weights are small (int8, int4), a one-token step spent most of its time between the
// matmuls: about 40 PyTorch calls per layer (views, copies into the cache, small allocations),
// each costing microseconds of dispatch. Here the weights are held natively and a step is one
// call; each op is the same function the per-op path calls (gemv.cpp, decode_ops.cpp) in the
// same order, so results are bit-identical to it, and llm/infer/kernels.py keeps the PyTorch
// reference of every op.
//
// The KV cache is addressed through a block table, which covers both caches inference uses:
// key j of row b, KV head kh of layer l sits at
//   k_cache[l] + blocks[b, j / block_size] * s_block + (j % block_size) * s_slot + kh * s_head,
// so a static cache (L, B, K, S, E) is one block of S slots per row, and the server's paged pool
// (L, blocks, block size, K, E) uses its block tables as they are. This file knows nothing about
// cache objects or models beyond these shapes.
#include "kernels.h"

#include <algorithm>
#include <cstring>

namespace llm_kernels {

at::Tensor DecodeLayers::Matrix::mul(const at::Tensor& x) const {
  switch (a.scalar_type()) {
    case at::kFloat: return gemv_f32(x, a);
    case at::kBFloat16: return gemv_bf16(x, a);
    case at::kChar: return gemv_int8(x, a, b);
    case at::kByte: return gemv_int4(x, a, b, c);
    default: TORCH_CHECK(false, "unsupported weight dtype ", a.scalar_type());
  }
}

DecodeLayers::Matrix DecodeLayers::matrix(const std::vector<at::Tensor>& parts) {
  TORCH_CHECK(!parts.empty() && parts.size() <= 3, "a matrix is [w], [q, scale] or [p, scale, min]");
  const auto t = parts[0].scalar_type();
  const size_t want = t == at::kChar ? 2 : t == at::kByte ? 3 : 1;
  TORCH_CHECK(parts.size() == want, "wrong number of tensors for a ", t, " matrix");
  Matrix m;
  m.a = parts[0].contiguous();
  if (want > 1) m.b = parts[1].contiguous();
  if (want > 2) m.c = parts[2].contiguous();
  return m;
}

DecodeLayers::DecodeLayers(int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, double eps, at::Tensor cos,
                           at::Tensor sin)
    : H_(n_heads), K_(n_kv_heads), E_(head_dim), eps_(eps), cos_(cos.contiguous()), sin_(sin.contiguous()) {
  TORCH_CHECK(H_ % K_ == 0, "query heads must be a multiple of KV heads");
  TORCH_CHECK(cos_.scalar_type() == at::kFloat && cos_.size(1) == E_ / 2, "cos/sin must be float32 (max_len, E/2)");
}

void DecodeLayers::add_layer(const at::Tensor& attn_norm, const std::vector<at::Tensor>& wqkv,
                             const std::vector<at::Tensor>& wo, const at::Tensor& ffn_norm,
                             const std::vector<at::Tensor>& gate_up, const std::vector<at::Tensor>& down) {
  Layer l{attn_norm.contiguous(), matrix(wqkv), matrix(wo), ffn_norm.contiguous(), matrix(gate_up), matrix(down)};
  TORCH_CHECK(l.attn_norm.scalar_type() == at::kFloat && l.ffn_norm.scalar_type() == at::kFloat, "norms must be float32");
  layers_.push_back(std::move(l));
}

at::Tensor DecodeLayers::forward(const at::Tensor& x_in, const at::Tensor& positions, const at::Tensor& k_cache,
                                 const at::Tensor& v_cache, const at::Tensor& blocks, int64_t block_size,
                                 int64_t s_block, int64_t s_slot, int64_t s_head) const {
  TORCH_CHECK(positions.dim() == 2 && positions.scalar_type() == at::kLong, "positions must be int64 (B, T)");
  const int64_t B = positions.size(0), T = positions.size(1), M = B * T;
  TORCH_CHECK(x_in.scalar_type() == at::kFloat && x_in.numel() % M == 0, "x must be float32 (B, T, D)");
  const int64_t D = x_in.numel() / M, C = (H_ + 2 * K_) * E_;
  TORCH_CHECK(k_cache.scalar_type() == at::kFloat && v_cache.scalar_type() == at::kFloat && k_cache.is_contiguous() &&
                  v_cache.is_contiguous() && k_cache.sizes() == v_cache.sizes() &&
                  k_cache.size(0) >= static_cast<int64_t>(layers_.size()),
              "k/v caches must be contiguous float32 with one entry per layer in dimension 0");
  TORCH_CHECK(blocks.dim() == 2 && blocks.size(0) == B && blocks.scalar_type() == at::kLong && blocks.is_contiguous(),
              "blocks must be contiguous int64 (B, blocks per row)");
  const int64_t nb = blocks.size(1), per_layer = k_cache.stride(0);
  const auto pos = positions.contiguous();
  const int64_t* pp = pos.data_ptr<int64_t>();
  const int64_t* bp = blocks.data_ptr<int64_t>();
  // Every slot a new token writes must lie inside the layer's storage.
  for (int64_t m = 0; m < M; ++m) {
    const int64_t p = pp[m], b = m / T;
    TORCH_CHECK(p >= 0 && p / block_size < nb, "position ", p, " is outside row ", b, "'s blocks");
    const int64_t blk = bp[b * nb + p / block_size];
    TORCH_CHECK(blk >= 0 && blk * s_block + (block_size - 1) * s_slot + (K_ - 1) * s_head + E_ <= per_layer,
                "block ", blk, " is outside the cache");
  }
  at::Tensor x = x_in.reshape({M, D}).clone();
  float* xp = x.data_ptr<float>();
  auto add_into_x = [&](const at::Tensor& y) {
    const float* yp = y.data_ptr<float>();
    for (int64_t i = 0; i < M * D; ++i) xp[i] = xp[i] + yp[i];
  };
  for (size_t li = 0; li < layers_.size(); ++li) {
    const Layer& l = layers_[li];
    at::Tensor qkv = l.wqkv.mul(rms_norm(x, l.attn_norm, eps_)).view({B, T, C});  // (B, T, (H + 2K) * E)
    rope_(qkv, pos, cos_, sin_, H_ + K_, E_);
    float* kl = k_cache.data_ptr<float>() + li * per_layer;
    float* vl = v_cache.data_ptr<float>() + li * per_layer;
    const float* qp = qkv.data_ptr<float>();
    for (int64_t m = 0; m < M; ++m) {
      const int64_t p = pp[m];
      const int64_t slot = bp[(m / T) * nb + p / block_size] * s_block + (p % block_size) * s_slot;
      for (int64_t kh = 0; kh < K_; ++kh) {
        std::memcpy(kl + slot + kh * s_head, qp + m * C + (H_ + kh) * E_, E_ * sizeof(float));
        std::memcpy(vl + slot + kh * s_head, qp + m * C + (H_ + K_ + kh) * E_, E_ * sizeof(float));
      }
    }
    const at::Tensor q = qkv.narrow(2, 0, H_ * E_).view({B, T, H_, E_}).permute({0, 2, 1, 3});  // (B, H, T, E)
    const KVBlocks kv{kl, vl, bp, nb, block_size, s_block, s_slot, s_head, K_};
    const at::Tensor y = attention_blocks(q, kv, pos);  // (B, T, H, E)
    add_into_x(l.wo.mul(y.view({M, H_ * E_})));
    add_into_x(l.down.mul(silu_mul(l.gate_up.mul(rms_norm(x, l.ffn_norm, eps_)))));  // via (M, 2F)
  }
  return x.view(x_in.sizes());
}

}  // namespace llm_kernels
