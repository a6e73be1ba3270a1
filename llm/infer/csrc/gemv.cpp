// Weight-only matrix-vector kernels for decoding on CPU: y = x @ W^T for a few rows of x.
//
// Decoding one token reads every weight once and does two flops per weight, so it is bound by
// memory bandwidth and by the work of widening packed weights; the gain comes from reading fewer
// bytes (bf16, int8, int4). Each kernel streams one weight row at a time and multiplies it with up
// to ROW_TILE rows of x, so a weight byte is loaded once per tile of rows (speculative
// verification and small batches reuse it).
//
// Weight formats (the same bytes as GGUF's Q8_0 / Q4_0 / Q4_1 blocks when the group is 32):
//   f32  : W (N, K) float32
//   bf16 : W (N, K) bfloat16
//   int8 : Q (N, K) int8, scale (N, K/G) float16; w = q * scale
//   int4 : P (N, K/2) uint8, scale and min (N, K/G) float16; w = q * scale + min, q in 0..15.
//          In every block of 32 weights (16 bytes) byte i holds weight i in its low nibble and
//          weight i+16 in its high nibble.
//
// float32/bf16 weights multiply float32 x exactly. For int8/int4 the kernels round x to 16-bit
// fixed point per block of 32 elements (step = the block's max|x| / 32767) and take exact
// int16 x int8/int4 dot products (AVX512-VNNI vpdpwssd, or vpmaddwd without VNNI), applying the
// float weight scale and x step once per block; the int4 min term uses float sums of x. Without
// AVX-512 the integer kernels are plain loops (correct, not tuned).
// llm/infer/kernels.py builds this file and keeps a pure-PyTorch reference of every function;
// this file knows nothing about models.
#include "kernels.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/Half.h>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#if defined(__AVX512F__) || defined(__AVX2__) || defined(__F16C__)
#include <immintrin.h>
#endif

namespace {

constexpr int ROW_TILE = 4;
constexpr int64_t N_BLOCK = 32;  // weight rows per cache block (see run_rows)

inline float half_to_float(const at::Half* p) {
#if defined(__F16C__)
  return _cvtsh_ss(p->x);
#else
  return static_cast<float>(*p);
#endif
}

inline float bf16_bits_to_float(uint16_t b) {
  uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

#if defined(__AVX512F__)
inline __m512 load_bf16x16(const uint16_t* p) {
  __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16));
}
inline __m512i load_epi16x32(const int16_t* p) { return _mm512_loadu_si512(reinterpret_cast<const void*>(p)); }
// The first min(left, 16) lanes.
inline __mmask16 lanes_mask(int64_t left) {
  return left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1);
}
inline __m512i load_int8x32(const int8_t* p) {
  return _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
// Up to 16 float16 values widened to float32, lanes past `left` zero.
inline __m512 load_halves16(const at::Half* p, int64_t left) {
  return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(lanes_mask(left), reinterpret_cast<const void*>(p)));
}

// A row's group scales, widened 16 at a time into a register (no round trip through memory).
// Groups are visited in increasing order.
class ScaleCursor {
 public:
  ScaleCursor(const at::Half* scale, int64_t groups) : scale_(scale), groups_(groups) { reload(0); }
  // g's scale in every lane.
  __m512 one(int64_t g) {
    if (g >= base_ + 16) reload(g);
    return _mm512_permutexvar_ps(_mm512_set1_epi32(static_cast<int>(g - base_)), values_);
  }
  // ga's scale in lanes 0..7, gb's in lanes 8..15 (gb >= ga).
  __m512 pair(int64_t ga, int64_t gb) {
    if (gb >= base_ + 16) reload(ga);
    const __m512i idx = _mm512_mask_set1_epi32(_mm512_set1_epi32(static_cast<int>(ga - base_)), 0xFF00,
                                               static_cast<int>(gb - base_));
    return _mm512_permutexvar_ps(idx, values_);
  }

 private:
  void reload(int64_t base) {
    base_ = base;
    values_ = load_halves16(scale_ + base, groups_ - base);
  }
  const at::Half* scale_;
  int64_t groups_;
  int64_t base_ = 0;
  __m512 values_;
};
inline __m512i dot_pairs(__m512i acc, __m512i a, __m512i b) {
#if defined(__AVX512VNNI__)
  return _mm512_dpwssd_epi32(acc, a, b);
#else
  return _mm512_add_epi32(acc, _mm512_madd_epi16(a, b));
#endif
}
#elif defined(__AVX2__)
inline __m256 load_bf16x8(const uint16_t* p) {
  __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(v), 16));
}
inline float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}
#endif

// Independent accumulator chains per row: one FMA chain is bound by instruction latency (4-5
// cycles), not throughput, so a row needs several in flight. The count is the same for every
// tile size, so a row's sums are added in the same order whether it is computed alone or with
// others: verifying k speculative tokens gives bit-identical results to k single steps.
template <int R>
constexpr int chains() { return 4; }

// ---- float32 / bf16 weights, float32 x --------------------------------------------------------
#if defined(__AVX512F__)
inline __m512 load_w16(const float* p) { return _mm512_loadu_ps(p); }
inline __m512 load_w16(const uint16_t* p) { return load_bf16x16(p); }
#elif defined(__AVX2__)
inline __m256 load_w8(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 load_w8(const uint16_t* p) { return load_bf16x8(p); }
#endif
inline float w_to_float(float w) { return w; }
inline float w_to_float(uint16_t w) { return bf16_bits_to_float(w); }

template <int R, typename W>
void dot_float(const float* x, int64_t ldx, const W* w, int64_t K, float* out) {
  constexpr int C = chains<R>();
  int64_t k = 0;
  float acc_s[R] = {};
#if defined(__AVX512F__)
  __m512 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = _mm512_setzero_ps();
  for (; k + 16 * C <= K; k += 16 * C) {
    for (int c = 0; c < C; ++c) {
      const __m512 wf = load_w16(w + k + 16 * c);
      for (int r = 0; r < R; ++r)
        acc[r][c] = _mm512_fmadd_ps(wf, _mm512_loadu_ps(x + r * ldx + k + 16 * c), acc[r][c]);
    }
  }
  for (; k + 16 <= K; k += 16) {
    const __m512 wf = load_w16(w + k);
    for (int r = 0; r < R; ++r) acc[r][0] = _mm512_fmadd_ps(wf, _mm512_loadu_ps(x + r * ldx + k), acc[r][0]);
  }
  for (int r = 0; r < R; ++r) {
    for (int c = 1; c < C; ++c) acc[r][0] = _mm512_add_ps(acc[r][0], acc[r][c]);
    acc_s[r] = _mm512_reduce_add_ps(acc[r][0]);
  }
#elif defined(__AVX2__)
  __m256 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = _mm256_setzero_ps();
  for (; k + 8 * C <= K; k += 8 * C) {
    for (int c = 0; c < C; ++c) {
      const __m256 wf = load_w8(w + k + 8 * c);
      for (int r = 0; r < R; ++r)
        acc[r][c] = _mm256_fmadd_ps(wf, _mm256_loadu_ps(x + r * ldx + k + 8 * c), acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int c = 1; c < C; ++c) acc[r][0] = _mm256_add_ps(acc[r][0], acc[r][c]);
    acc_s[r] = hsum256(acc[r][0]);
  }
#endif
  for (; k < K; ++k) {
    const float wf = w_to_float(w[k]);
    for (int r = 0; r < R; ++r) acc_s[r] += wf * x[r * ldx + k];
  }
  for (int r = 0; r < R; ++r) out[r] = acc_s[r];
}

// ---- 16-bit fixed-point x ----------------------------------------------------------------------
// x is rounded per block of 32 elements: xq = round(x / step), step = max|x in block| / 32767, so
// an outlier only coarsens its own block. Exact int32 dot products of a 32-block are scaled by
// (weight scale x block step) in float.
constexpr int64_t XBLOCK = 32;

struct QuantizedX {
  std::vector<int16_t> q;         // (M, K), maybe permuted (see quantize_x)
  std::vector<float> step;        // (M, K/32) block steps
  std::vector<float> step_pairs;  // (M, K/64, 16): lanes 0..7 step of block 2c, lanes 8..15 of block 2c+1
  std::vector<float> group_sum;   // (M, K/G) float sums of x over each weight group (int4 min term)
};

// In each 64-element chunk, [A0..31, B0..31] -> [A0..15, B0..15, A16..31, B16..31] (AVX-512 int4).
constexpr bool kPermuteInt4 =
#if defined(__AVX512F__)
    true;
#else
    false;
#endif

QuantizedX quantize_x(const float* x, int64_t M, int64_t K, bool permute64, int64_t G) {
  const int64_t blocks = K / XBLOCK;
  QuantizedX out{std::vector<int16_t>(M * K), std::vector<float>(M * blocks),
                 std::vector<float>(permute64 ? M * (K / 64) * 16 : 0), std::vector<float>(G ? M * (K / G) : 0)};
  for (int64_t m = 0; m < M; ++m) {
    const float* xr = x + m * K;
    int16_t* qr = out.q.data() + m * K;
    for (int64_t blk = 0; blk < blocks; ++blk) {
      float amax = 0.f;
      for (int64_t k = blk * XBLOCK; k < (blk + 1) * XBLOCK; ++k) amax = std::max(amax, std::fabs(xr[k]));
      const float step = amax > 0.f ? amax / 32767.f : 1.f;
      const float inv = 1.f / step;
      out.step[m * blocks + blk] = step;
      for (int64_t k = blk * XBLOCK; k < (blk + 1) * XBLOCK; ++k) {
        int64_t dst = k;
        if (permute64) {
          const int64_t c = k & ~int64_t(63), i = k & 63, half = i >> 5, j = i & 31;
          dst = c + (j < 16 ? half * 16 + j : 32 + half * 16 + (j - 16));
        }
        qr[dst] = static_cast<int16_t>(std::clamp(std::nearbyint(xr[k] * inv), -32767.f, 32767.f));
      }
    }
    if (permute64) {
      for (int64_t c = 0; c < K / 64; ++c) {
        float* lanes = out.step_pairs.data() + (m * (K / 64) + c) * 16;
        std::fill(lanes, lanes + 8, out.step[m * blocks + 2 * c]);
        std::fill(lanes + 8, lanes + 16, out.step[m * blocks + 2 * c + 1]);
      }
    }
    for (int64_t g = 0; G && g < K / G; ++g) {
      float s = 0.f;
      for (int64_t k = g * G; k < (g + 1) * G; ++k) s += xr[k];
      out.group_sum[m * (K / G) + g] = s;
    }
  }
  return out;
}

// ---- int8 weights, 16-bit x, one scale per group of G weights ----------------------------------
// G is K (one scale per row) or a power of two >= 32 with lg = log2(G); K is a multiple of 32.
// Returns sum_k x_k w_k per row.
template <int R>
void dot_int8(const int16_t* xq, const float* xstep, int64_t ldx, const int8_t* q, const at::Half* scale, int64_t K,
              int64_t G, int lg, float* out) {
  constexpr int C = chains<R>();
  const int64_t ldb = K / XBLOCK;  // x steps per row
  float total[R] = {};
  int64_t k = 0;
#if defined(__AVX512F__)
  __m512 facc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) facc[r][c] = _mm512_setzero_ps();
  const bool per_row = G == K;
  ScaleCursor scales(scale, K / G);
  // Each 32-weight block: exact int32 dot product, scaled by its weight scale (unless one scale
  // serves the whole row: applied at the end) and its x step into a float chain.
  auto chunk = [&](int64_t kc, auto c_const) {
    constexpr int c = decltype(c_const)::value;
    const __m512i wq = load_int8x32(q + kc);
    const __m512 sv = per_row ? _mm512_set1_ps(1.f) : scales.one(kc >> lg);
    for (int r = 0; r < R; ++r) {
      const __m512i acc = dot_pairs(_mm512_setzero_si512(), wq, load_epi16x32(xq + r * ldx + kc));
      const __m512 s = _mm512_mul_ps(sv, _mm512_set1_ps(xstep[r * ldb + (kc >> 5)]));
      facc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), s, facc[r][c]);
    }
  };
  for (; k + 32 * C <= K; k += 32 * C) {
    chunk(k, std::integral_constant<int, 0>{});
    if constexpr (C > 1) chunk(k + 32, std::integral_constant<int, 1>{});
    if constexpr (C > 2) chunk(k + 64, std::integral_constant<int, 2>{});
    if constexpr (C > 3) chunk(k + 96, std::integral_constant<int, 3>{});
  }
  for (; k < K; k += 32) chunk(k, std::integral_constant<int, 0>{});
  const float row_scale = per_row ? half_to_float(scale) : 1.f;
  for (int r = 0; r < R; ++r) {
    for (int c = 1; c < C; ++c) facc[r][0] = _mm512_add_ps(facc[r][0], facc[r][c]);
    total[r] = _mm512_reduce_add_ps(facc[r][0]) * row_scale;
  }
#else
  for (; k < K; k += XBLOCK) {
    const float s = half_to_float(scale + k / G);
    for (int r = 0; r < R; ++r) {
      int32_t acc = 0;
      for (int64_t j = k; j < k + XBLOCK; ++j) acc += static_cast<int32_t>(q[j]) * xq[r * ldx + j];
      total[r] += static_cast<float>(acc) * s * xstep[r * ldb + k / XBLOCK];
    }
  }
#endif
  for (int r = 0; r < R; ++r) out[r] = total[r];
}

// ---- int4 weights, 16-bit x, scale and min per group of G = 2^lg >= 32 weights -----------------
// sum_k x_k (q_k s + m) = s * sum_k x_k q_k + m * sum_k x_k: the min term needs only the float
// sums of x over each group (`xsum`, shared by every weight row).
//
// The AVX-512 path widens 32 packed bytes (two 32-weight blocks A, B) at once: the low nibbles give
// [A0..15, B0..15] and the high nibbles [A16..31, B16..31], so x is stored permuted the same way in
// every 64-weight chunk (see quantize_x); int32 lanes 0..7 then sum block A and lanes 8..15 block
// B, and `xpairs` holds the matching x steps. Other paths read x in natural order.
template <int R, bool G32>
void dot_int4(const int16_t* xq, const float* xstep, const float* xpairs, int64_t ldx, const float* xsum,
              int64_t ldxs, const uint8_t* p, const at::Half* scale, const at::Half* minv, int64_t K, int64_t G, int lg,
              float* out) {
  constexpr int C = chains<R>();
  float total[R] = {};
  const int64_t groups = K / G;
#if defined(__AVX512F__)
  (void)xstep;
  const int64_t ldp = (K / 64) * 16;  // x step pairs per row
  __m512 facc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) facc[r][c] = _mm512_setzero_ps();
  for (int64_t g = 0; g < groups; g += 16) {
    const __mmask16 mask = lanes_mask(groups - g);
    const __m512 mv = load_halves16(minv + g, groups - g);
    for (int r = 0; r < R; ++r)
      facc[r][0] = _mm512_fmadd_ps(mv, _mm512_maskz_loadu_ps(mask, xsum + r * ldxs + g), facc[r][0]);
  }
  const __m512i low4 = _mm512_set1_epi16(0xF);
  ScaleCursor scales(scale, groups);
  auto chunk = [&](int64_t kc, auto c_const) {
    constexpr int c = decltype(c_const)::value;
    __m512 sv;
    if constexpr (G32) {
      sv = scales.pair(kc >> 5, (kc >> 5) + 1);
    } else {
      sv = scales.one(kc >> lg);
    }
    const __m512i b = _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + kc / 2)));
    const __m512i lo = _mm512_and_si512(b, low4);
    const __m512i hi = _mm512_srli_epi16(b, 4);
    for (int r = 0; r < R; ++r) {
      const int16_t* xr = xq + r * ldx + kc;
      const __m512i acc = _mm512_add_epi32(dot_pairs(_mm512_setzero_si512(), lo, load_epi16x32(xr)),
                                           dot_pairs(_mm512_setzero_si512(), hi, load_epi16x32(xr + 32)));
      const __m512 s = _mm512_mul_ps(sv, _mm512_loadu_ps(xpairs + r * ldp + (kc >> 6) * 16));
      facc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), s, facc[r][c]);
    }
  };
  int64_t k = 0;
  for (; k + 64 * C <= K; k += 64 * C) {
    chunk(k, std::integral_constant<int, 0>{});
    if constexpr (C > 1) chunk(k + 64, std::integral_constant<int, 1>{});
    if constexpr (C > 2) chunk(k + 128, std::integral_constant<int, 2>{});
    if constexpr (C > 3) chunk(k + 192, std::integral_constant<int, 3>{});
  }
  for (; k < K; k += 64) chunk(k, std::integral_constant<int, 0>{});
  for (int r = 0; r < R; ++r) {
    for (int c = 1; c < C; ++c) facc[r][0] = _mm512_add_ps(facc[r][0], facc[r][c]);
    total[r] = _mm512_reduce_add_ps(facc[r][0]);
  }
#else
  (void)xpairs;
  const int64_t ldb = K / XBLOCK;
  for (int64_t g = 0; g < groups; ++g)
    for (int r = 0; r < R; ++r) total[r] += half_to_float(minv + g) * xsum[r * ldxs + g];
  for (int64_t k = 0; k < K; k += 32) {
    const float s = half_to_float(scale + (k >> lg));
    for (int r = 0; r < R; ++r) {
      int32_t acc = 0;
      for (int i = 0; i < 16; ++i) {
        const uint8_t byte = p[k / 2 + i];
        acc += (byte & 0xF) * xq[r * ldx + k + i] + (byte >> 4) * xq[r * ldx + k + 16 + i];
      }
      total[r] += static_cast<float>(acc) * s * xstep[r * ldb + k / XBLOCK];
    }
  }
#endif
  for (int r = 0; r < R; ++r) out[r] = total[r];
}

// ---- row tiles and threading -------------------------------------------------------------------
// Adapters: `run<R>(m, n, out)` puts x[m..m+R) . W[n] into out[0..R).
template <typename W>
struct FloatRows {
  const float* xp; const W* wp; int64_t K;
  template <int R> void run(int64_t m, int64_t n, float* out) const {
    dot_float<R, W>(xp + m * K, K, wp + n * K, K, out);
  }
};

struct Int8Rows {
  const QuantizedX* xq; const int8_t* qp; const at::Half* sp; int64_t K, G, groups; int lg;
  template <int R> void run(int64_t m, int64_t n, float* out) const {
    dot_int8<R>(xq->q.data() + m * K, xq->step.data() + m * (K / XBLOCK), K, qp + n * K, sp + n * groups, K, G, lg,
                out);
  }
};

struct Int4Rows {
  const QuantizedX* xq; const uint8_t* pp; const at::Half* sp; const at::Half* mp; int64_t K, G, groups; int lg;
  template <int R> void run(int64_t m, int64_t n, float* out) const {
    const float* pairs = xq->step_pairs.empty() ? nullptr : xq->step_pairs.data() + m * (K / 64) * 16;
    const float* steps = xq->step.data() + m * (K / XBLOCK);
    const float* sums = xq->group_sum.data() + m * groups;
    const uint8_t* row = pp + n * (K / 2);
    if (G == 32) {
      dot_int4<R, true>(xq->q.data() + m * K, steps, pairs, K, sums, groups, row, sp + n * groups, mp + n * groups, K,
                        G, lg, out);
    } else {
      dot_int4<R, false>(xq->q.data() + m * K, steps, pairs, K, sums, groups, row, sp + n * groups, mp + n * groups, K,
                         G, lg, out);
    }
  }
};

// Runs the adapter for every weight row and every tile of x rows, split over threads by weight rows.
template <typename Rows>
at::Tensor run_rows(int64_t M, int64_t N, const at::TensorOptions& options, const Rows& rows) {
  at::Tensor y = at::empty({M, N}, options);
  float* yp = y.data_ptr<float>();
  const int64_t grain = std::max<int64_t>(16, N / (4 * at::get_num_threads()));
  at::parallel_for(0, N, grain, [&](int64_t n0, int64_t n1) {
    float buf[ROW_TILE];
    float block[ROW_TILE][N_BLOCK];
    // Weight rows in blocks of N_BLOCK, x tiles inside: a block is read from memory once and
    // from cache for the further tiles, while one tile of x stays in L1 (more than ROW_TILE rows
    // of a long x row would not fit). Each (x row, weight row) dot product is computed the
    // same way in any order, so results do not depend on M.
    for (int64_t nb = n0; nb < n1; nb += N_BLOCK) {
      const int64_t ne = std::min<int64_t>(nb + N_BLOCK, n1);
      for (int64_t m = 0; m < M; m += ROW_TILE) {
        const int64_t tile = std::min<int64_t>(ROW_TILE, M - m);
        for (int64_t n = nb; n < ne; ++n) {
          switch (tile) {
            case 4: rows.template run<4>(m, n, buf); break;
            case 3: rows.template run<3>(m, n, buf); break;
            case 2: rows.template run<2>(m, n, buf); break;
            default: rows.template run<1>(m, n, buf); break;
          }
          for (int64_t r = 0; r < tile; ++r) block[r][n - nb] = buf[r];
        }
        // Whole runs of outputs per x row: rows of y lie N floats apart, and single scattered
        // stores to them would evict each other from the cache when N is a large power of two.
        for (int64_t r = 0; r < tile; ++r) std::memcpy(yp + (m + r) * N + nb, block[r], (ne - nb) * sizeof(float));
      }
    }
  });
  return y;
}

// log2(G) when G is a power of two, else -1.
int log2_exact(int64_t G) {
  int lg = 0;
  while ((int64_t(1) << lg) < G) ++lg;
  return (int64_t(1) << lg) == G ? lg : -1;
}

void check_x(const at::Tensor& x, int64_t K) {
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == at::kFloat && x.is_contiguous(),
              "x must be a contiguous float32 (M, K) tensor");
  TORCH_CHECK(x.size(1) == K, "x has ", x.size(1), " columns but the weight has ", K);
}

void check_scale(const at::Tensor& scale, int64_t N, int64_t K, const char* name) {
  TORCH_CHECK(scale.dim() == 2 && scale.size(0) == N && scale.scalar_type() == at::kHalf && scale.is_contiguous(),
              name, " must be a contiguous (N, K/G) float16 tensor");
  TORCH_CHECK(scale.size(1) > 0 && K % scale.size(1) == 0, "K must be a multiple of the number of groups");
}

}  // namespace

namespace llm_kernels {

at::Tensor gemv_f32(const at::Tensor& x, const at::Tensor& w) {
  TORCH_CHECK(w.dim() == 2 && w.scalar_type() == at::kFloat && w.is_contiguous(), "w must be (N, K) float32");
  const int64_t N = w.size(0), K = w.size(1);
  check_x(x, K);
  return run_rows(x.size(0), N, x.options(), FloatRows<float>{x.data_ptr<float>(), w.data_ptr<float>(), K});
}

at::Tensor gemv_bf16(const at::Tensor& x, const at::Tensor& w) {
  TORCH_CHECK(w.dim() == 2 && w.scalar_type() == at::kBFloat16 && w.is_contiguous(), "w must be (N, K) bf16");
  const int64_t N = w.size(0), K = w.size(1);
  check_x(x, K);
  const uint16_t* wp = reinterpret_cast<const uint16_t*>(w.data_ptr<at::BFloat16>());
  return run_rows(x.size(0), N, x.options(), FloatRows<uint16_t>{x.data_ptr<float>(), wp, K});
}

at::Tensor gemv_int8(const at::Tensor& x, const at::Tensor& q, const at::Tensor& scale) {
  TORCH_CHECK(q.dim() == 2 && q.scalar_type() == at::kChar && q.is_contiguous(), "q must be (N, K) int8");
  const int64_t N = q.size(0), K = q.size(1);
  check_x(x, K);
  check_scale(scale, N, K, "scale");
  TORCH_CHECK(K % XBLOCK == 0, "int8 rows must hold a multiple of 32 weights");
  const int64_t groups = scale.size(1);
  const int64_t G = K / groups;
  const int lg = log2_exact(G);
  TORCH_CHECK(groups == 1 || lg >= 5, "int8 groups must be the whole row or a power of two >= 32");
  const QuantizedX xq = quantize_x(x.data_ptr<float>(), x.size(0), K, false, 0);
  return run_rows(x.size(0), N, x.options(),
                  Int8Rows{&xq, q.data_ptr<int8_t>(), scale.data_ptr<at::Half>(), K, G, groups, lg});
}

at::Tensor gemv_int4(const at::Tensor& x, const at::Tensor& p, const at::Tensor& scale, const at::Tensor& minv) {
  TORCH_CHECK(p.dim() == 2 && p.scalar_type() == at::kByte && p.is_contiguous(), "p must be (N, K/2) uint8");
  const int64_t N = p.size(0), K = p.size(1) * 2;
  check_x(x, K);
  check_scale(scale, N, K, "scale");
  check_scale(minv, N, K, "min");
  TORCH_CHECK(minv.size(1) == scale.size(1), "min and scale must have the same groups");
  const int64_t groups = scale.size(1);
  const int64_t G = K / groups;
  const int lg = log2_exact(G);
  TORCH_CHECK(lg >= 5, "int4 groups must be a power of two >= 32");
  TORCH_CHECK(K % (kPermuteInt4 ? 64 : 32) == 0, "int4 rows must hold a multiple of 64 weights");
  const QuantizedX xq = quantize_x(x.data_ptr<float>(), x.size(0), K, kPermuteInt4, G);
  return run_rows(x.size(0), N, x.options(),
                  Int4Rows{&xq, p.data_ptr<uint8_t>(), scale.data_ptr<at::Half>(), minv.data_ptr<at::Half>(), K, G,
                           groups, lg});
}

int64_t int4_row_multiple() { return kPermuteInt4 ? 64 : 32; }

}  // namespace llm_kernels
