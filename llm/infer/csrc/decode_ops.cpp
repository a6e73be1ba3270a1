// The small per-layer operations of a decoding step, fused: RMSNorm, SwiGLU, RoPE and causal
// attention of a few queries over a KV prefix.
//
// With one token per step these ops touch a few kilobytes each, so a PyTorch call costs far more
// in dispatch and temporaries than in arithmetic; one native call per op keeps a 30-layer step
// from spending most of its time outside the matmuls. llm/infer/kernels.py routes calls here and
// keeps a PyTorch reference of each; this file knows nothing about models or caches.
#include "kernels.h"

#include <ATen/Parallel.h>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace {

#if defined(__AVX512F__)
// e^x for x <= 0 (softmax after subtracting the max) and moderate positive x: Cody-Waite range
// reduction to r in [-ln2/2, ln2/2], a degree-6 Taylor polynomial (relative error ~2e-7),
// then scaling by 2^n.
inline __m512 exp512(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
  x = _mm512_min_ps(x, _mm512_set1_ps(88.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187e-06f), r);
  __m512 p = _mm512_set1_ps(1.f / 720.f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 120.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 24.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 6.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
  return _mm512_scalef_ps(p, n);
}

inline __mmask16 tail_mask(int64_t left) { return left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1); }
#endif

float dot(const float* a, const float* b, int64_t n) {
  int64_t i = 0;
  float s = 0.f;
#if defined(__AVX512F__)
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  for (; i + 32 <= n; i += 32) {
    acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
    acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), acc1);
  }
  for (; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    acc0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), acc0);
  }
  s = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
#else
  for (; i < n; ++i) s += a[i] * b[i];
#endif
  return s;
}

// out[i] = exp(x[i] - m) in place; returns the sum.
float exp_shifted_(float* x, int64_t n, float m) {
  int64_t i = 0;
  float sum = 0.f;
#if defined(__AVX512F__)
  __m512 acc = _mm512_setzero_ps();
  const __m512 mv = _mm512_set1_ps(m);
  for (; i < n; i += 16) {
    const __mmask16 mask = tail_mask(n - i);
    const __m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(mask, x + i), mv));
    _mm512_mask_storeu_ps(x + i, mask, e);
    acc = _mm512_mask_add_ps(acc, mask, acc, e);
  }
  sum = _mm512_reduce_add_ps(acc);
#else
  for (; i < n; ++i) {
    x[i] = std::exp(x[i] - m);
    sum += x[i];
  }
#endif
  return sum;
}

void check_f32(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.scalar_type() == at::kFloat, name, " must be float32");
  TORCH_CHECK(t.stride(-1) == 1, name, " must be contiguous in its last dimension");
}

}  // namespace

namespace llm_kernels {

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& w, double eps) {
  TORCH_CHECK(x.dim() == 2 && x.is_contiguous() && x.scalar_type() == at::kFloat, "x must be contiguous float32 (M, D)");
  const int64_t M = x.size(0), D = x.size(1);
  TORCH_CHECK(w.numel() == D && w.is_contiguous() && w.scalar_type() == at::kFloat, "w must be float32 (D,)");
  at::Tensor y = at::empty_like(x);
  const float* xp = x.data_ptr<float>();
  const float* wp = w.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  for (int64_t m = 0; m < M; ++m) {
    const float* xr = xp + m * D;
    const float inv = 1.f / std::sqrt(dot(xr, xr, D) / static_cast<float>(D) + static_cast<float>(eps));
    float* yr = yp + m * D;
    for (int64_t d = 0; d < D; ++d) yr[d] = xr[d] * inv * wp[d];
  }
  return y;
}

at::Tensor silu_mul(const at::Tensor& gu) {
  TORCH_CHECK(gu.dim() == 2 && gu.is_contiguous() && gu.scalar_type() == at::kFloat, "gu must be contiguous float32");
  const int64_t M = gu.size(0), F = gu.size(1) / 2;
  at::Tensor y = at::empty({M, F}, gu.options());
  const float* gp = gu.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  for (int64_t m = 0; m < M; ++m) {
    const float* g = gp + m * 2 * F;
    const float* u = g + F;
    float* out = yp + m * F;
    int64_t i = 0;
#if defined(__AVX512F__)
    for (; i < F; i += 16) {
      const __mmask16 mask = tail_mask(F - i);
      const __m512 gv = _mm512_maskz_loadu_ps(mask, g + i);
      const __m512 sig = _mm512_div_ps(_mm512_set1_ps(1.f), _mm512_add_ps(_mm512_set1_ps(1.f), exp512(_mm512_sub_ps(_mm512_setzero_ps(), gv))));
      _mm512_mask_storeu_ps(out + i, mask, _mm512_mul_ps(_mm512_mul_ps(gv, sig), _mm512_maskz_loadu_ps(mask, u + i)));
    }
#else
    for (; i < F; ++i) out[i] = g[i] / (1.f + std::exp(-g[i])) * u[i];
#endif
  }
  return y;
}

void rope_(at::Tensor& qkv, const at::Tensor& positions, const at::Tensor& cos, const at::Tensor& sin,
           int64_t n_heads, int64_t head_dim) {
  TORCH_CHECK(qkv.dim() == 3 && qkv.is_contiguous() && qkv.scalar_type() == at::kFloat, "qkv must be contiguous (B, T, C)");
  TORCH_CHECK(positions.dim() == 2 && positions.size(0) == qkv.size(0) && positions.size(1) == qkv.size(1) &&
                  positions.scalar_type() == at::kLong,
              "positions must be int64 (B, T)");
  TORCH_CHECK(cos.is_contiguous() && sin.is_contiguous() && cos.size(1) == head_dim / 2, "cos/sin must be (max_len, E/2)");
  TORCH_CHECK(n_heads * head_dim <= qkv.size(2), "more rotated heads than columns");
  const int64_t B = qkv.size(0), T = qkv.size(1), C = qkv.size(2), half = head_dim / 2, max_len = cos.size(0);
  const auto pos = positions.contiguous();
  const int64_t* pp = pos.data_ptr<int64_t>();
  const float* cp = cos.data_ptr<float>();
  const float* sp = sin.data_ptr<float>();
  float* xp = qkv.data_ptr<float>();
  for (int64_t bt = 0; bt < B * T; ++bt) {
    const int64_t p = std::clamp<int64_t>(pp[bt], 0, max_len - 1);
    const float* c = cp + p * half;
    const float* s = sp + p * half;
    for (int64_t h = 0; h < n_heads; ++h) {
      float* x = xp + bt * C + h * head_dim;
      for (int64_t i = 0; i < half; ++i) {
        const float x0 = x[2 * i], x1 = x[2 * i + 1];
        x[2 * i] = x0 * c[i] - x1 * s[i];
        x[2 * i + 1] = x0 * s[i] + x1 * c[i];
      }
    }
  }
}

namespace {

// The shared loop of both attention entry points. `rows(b, kh)` gives a locator whose
// `key(j)` / `value(j)` point at key/value row j of sequence b, KV head kh; the sums run in the
// same order for either storage, so contiguous and paged K/V give identical results.
template <typename Rows>
at::Tensor attend(const at::Tensor& q, const at::Tensor& limits, int64_t Kh, int64_t S, const Rows& rows) {
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), E = q.size(3);
  TORCH_CHECK(H % Kh == 0, "query heads must be a multiple of KV heads");
  TORCH_CHECK(limits.dim() == 2 && limits.size(0) == B && limits.size(1) == T && limits.scalar_type() == at::kLong,
              "limits must be int64 (B, T)");
  const auto lim = limits.contiguous();
  const int64_t* lp = lim.data_ptr<int64_t>();
  at::Tensor out = at::empty({B, T, H, E}, q.options());
  const float* qp = q.data_ptr<float>();
  float* op = out.data_ptr<float>();
  const int64_t rep = H / Kh;
  const float scale = 1.f / std::sqrt(static_cast<float>(E));
  at::parallel_for(0, B * H * T, 1, [&](int64_t i0, int64_t i1) {
    std::vector<float> scores(S), qs(E), acc(E);
    for (int64_t item = i0; item < i1; ++item) {
      const int64_t b = item / (H * T), h = (item / T) % H, t = item % T;
      const int64_t len = std::min<int64_t>(lp[b * T + t] + 1, S);
      float* o = op + ((b * T + t) * H + h) * E;
      if (len <= 0) {
        std::fill(o, o + E, 0.f);
        continue;
      }
      const float* qr = qp + b * q.stride(0) + h * q.stride(1) + t * q.stride(2);
      for (int64_t e = 0; e < E; ++e) qs[e] = qr[e] * scale;
      const auto kv = rows(b, h / rep);
      float m = -std::numeric_limits<float>::infinity();
      for (int64_t j = 0; j < len; ++j) {
        scores[j] = dot(qs.data(), kv.key(j), E);
        m = std::max(m, scores[j]);
      }
      const float inv_sum = 1.f / exp_shifted_(scores.data(), len, m);
      std::fill(acc.begin(), acc.end(), 0.f);
      for (int64_t j = 0; j < len; ++j) {
        const float pj = scores[j];
        const float* vr = kv.value(j);
        for (int64_t e = 0; e < E; ++e) acc[e] += pj * vr[e];
      }
      for (int64_t e = 0; e < E; ++e) o[e] = acc[e] * inv_sum;
    }
  });
  return out;
}

struct ContiguousRows {
  const float* kb; const float* vb; int64_t ks, vs;
  const float* key(int64_t j) const { return kb + j * ks; }
  const float* value(int64_t j) const { return vb + j * vs; }
};

struct PagedRows {
  const float* kp; const float* vp; const int64_t* blocks; int64_t block_size, row;  // row = Kh * E
  int64_t kh_off;
  const float* at(const float* pool, int64_t j) const {
    return pool + (blocks[j / block_size] * block_size + j % block_size) * row + kh_off;
  }
  const float* key(int64_t j) const { return at(kp, j); }
  const float* value(int64_t j) const { return at(vp, j); }
};

struct BlockRows {
  const KVBlocks* kv; const int64_t* blocks; int64_t kh_off;
  const float* at(const float* base, int64_t j) const {
    return base + blocks[j / kv->block_size] * kv->s_block + (j % kv->block_size) * kv->s_slot + kh_off;
  }
  const float* key(int64_t j) const { return at(kv->k, j); }
  const float* value(int64_t j) const { return at(kv->v, j); }
};

}  // namespace

at::Tensor attention_blocks(const at::Tensor& q, const KVBlocks& kv, const at::Tensor& limits) {
  check_f32(q, "q");
  TORCH_CHECK(q.dim() == 4, "q must be (B, H, T, E)");
  return attend(q, limits, kv.Kh, kv.nb * kv.block_size, [&](int64_t b, int64_t kh) {
    return BlockRows{&kv, kv.blocks + b * kv.nb, kh * kv.s_head};
  });
}

at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& limits) {
  check_f32(q, "q");
  check_f32(k, "k");
  check_f32(v, "v");
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.sizes() == k.sizes(), "q (B, H, T, E), k/v (B, Kh, S, E)");
  TORCH_CHECK(k.size(0) == q.size(0) && k.size(3) == q.size(3), "k/v do not match q");
  const float* kp = k.data_ptr<float>();
  const float* vp = v.data_ptr<float>();
  return attend(q, limits, k.size(1), k.size(2), [&](int64_t b, int64_t kh) {
    return ContiguousRows{kp + b * k.stride(0) + kh * k.stride(1), vp + b * v.stride(0) + kh * v.stride(1),
                          k.stride(2), v.stride(2)};
  });
}

at::Tensor attention_paged(const at::Tensor& q, const at::Tensor& pool_k, const at::Tensor& pool_v,
                           const at::Tensor& blocks, const at::Tensor& limits) {
  check_f32(q, "q");
  TORCH_CHECK(pool_k.scalar_type() == at::kFloat && pool_v.scalar_type() == at::kFloat && pool_k.is_contiguous() &&
                  pool_v.is_contiguous() && pool_k.dim() == 4 && pool_v.sizes() == pool_k.sizes(),
              "pools must be contiguous float32 (blocks, block size, Kh, E)");
  TORCH_CHECK(q.dim() == 4 && pool_k.size(3) == q.size(3), "q (B, H, T, E) does not match the pools");
  TORCH_CHECK(blocks.dim() == 2 && blocks.size(0) == q.size(0) && blocks.scalar_type() == at::kLong &&
                  blocks.is_contiguous(),
              "blocks must be contiguous int64 (B, blocks per row)");
  const int64_t bs = pool_k.size(1), Kh = pool_k.size(2), E = pool_k.size(3), nb = blocks.size(1);
  const int64_t* bp = blocks.data_ptr<int64_t>();
  const float* kp = pool_k.data_ptr<float>();
  const float* vp = pool_v.data_ptr<float>();
  return attend(q, limits, Kh, nb * bs, [&](int64_t b, int64_t kh) {
    return PagedRows{kp, vp, bp + b * nb, bs, Kh * E, kh * E};
  });
}

// How many threads one at::parallel_for really runs on. It is an OpenMP pragma in ATen's
// headers, so a build without -fopenmp silently runs every kernel on one thread.
int64_t parallel_workers() {
  std::mutex lock;
  std::set<std::thread::id> seen;
  at::parallel_for(0, 1 << 12, 1, [&](int64_t, int64_t) {
    std::lock_guard<std::mutex> guard(lock);
    seen.insert(std::this_thread::get_id());
  });
  return static_cast<int64_t>(seen.size());
}

std::string isa() {
#if defined(__AVX512F__) && defined(__AVX512VNNI__)
  return "avx512-vnni";
#elif defined(__AVX512F__)
  return "avx512";
#elif defined(__AVX2__)
  return "avx2";
#else
  return "scalar";
#endif
}

}  // namespace llm_kernels
