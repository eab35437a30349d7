// alband: scoring a tall pool X (N, d) under a softmax model with a narrow W (d, C), C small,
// as XLA FFI custom calls for the CPU (AVX2 + FMA):
//
//   alband_narrow_matmul      out (N, C) = X @ W                      (Wt = W' given as (C, d))
//   alband_pool_uncertainty   out (N,)   = u(softmax(X @ W + b)) per row, u chosen by the
//                             attribute `kind`: 0 entropy -sum p log p, 1 margin -(p(1) - p(2)),
//                             2 least confidence 1 - max p.
//
// Why: XLA's CPU backend hands this shape to a general GEMM that runs at about a quarter of
// the FMA peak when C is 4-12; scoring a pool is then compute-bound at 2-3x the time of one
// read of X. Here each row of X is read once and multiplied against all C columns of W
// (given transposed, Wt (C, d), so both operands are read along d): per 8 floats of the row,
// one load of X and C fused multiply-adds against rows of Wt, which stay in L1.
// Accumulators: C <= 12 columns per block, one register each (two sets when C <= 6 so
// that consecutive FMAs do not wait on each other's latency). Rows are split into chunks
// that the threads of XLA's intra-op pool claim from an atomic counter.
//
// Summation order: 8 partial sums per column, added pairwise at the end, then the d % 8
// tail; so results differ from XLA's product by float rounding only.
//
// The uncertainty scores are computed 8 rows at a time while the rows' logits are still in
// L1: z_c = x.w_c + b_c, m = max_c z_c, e_c = exp(z_c - m), s = sum_c e_c; then
// entropy = log s - (sum_c e_c (z_c - m)) / s, margin = -(1 - exp(m2 - m)) / s with m2 the
// runner-up logit (0 when the top logit is shared, as the XLA version), least confidence
// = 1 - 1 / s. exp and log are Cephes-style polynomials (relative error ~1e-7 in float32),
// so the scores differ from XLA's by float rounding only.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// out[(c0 + c) * stride] = x . Wt[c0 + c], c < CB, for one row x of length d.
template <int CB>
inline void row_block(const float* x, const float* wt, float* out, int64_t d, int64_t c0, int64_t stride) {
  constexpr int S = CB <= 6 ? 2 : 1;
  __m256 acc[S][CB];
  for (int s = 0; s < S; ++s)
    for (int c = 0; c < CB; ++c) acc[s][c] = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 * S <= d; k += 8 * S) {
    for (int s = 0; s < S; ++s) {
      const __m256 xv = _mm256_loadu_ps(x + k + 8 * s);
      for (int c = 0; c < CB; ++c)
        acc[s][c] = _mm256_fmadd_ps(xv, _mm256_loadu_ps(wt + (c0 + c) * d + k + 8 * s), acc[s][c]);
    }
  }
  for (; k + 8 <= d; k += 8) {
    const __m256 xv = _mm256_loadu_ps(x + k);
    for (int c = 0; c < CB; ++c)
      acc[0][c] = _mm256_fmadd_ps(xv, _mm256_loadu_ps(wt + (c0 + c) * d + k), acc[0][c]);
  }
  for (int c = 0; c < CB; ++c) {
    __m256 total = acc[0][c];
    if constexpr (S == 2) total = _mm256_add_ps(total, acc[1][c]);
    float value = hsum(total);
    for (int64_t t = k; t < d; ++t) value += x[t] * wt[(c0 + c) * d + t];
    out[(c0 + c) * stride] = value;
  }
}

inline void row_block_dispatch(int cb, const float* x, const float* wt, float* out, int64_t d, int64_t c0,
                               int64_t stride) {
  switch (cb) {
    case 1: row_block<1>(x, wt, out, d, c0, stride); break;
    case 2: row_block<2>(x, wt, out, d, c0, stride); break;
    case 3: row_block<3>(x, wt, out, d, c0, stride); break;
    case 4: row_block<4>(x, wt, out, d, c0, stride); break;
    case 5: row_block<5>(x, wt, out, d, c0, stride); break;
    case 6: row_block<6>(x, wt, out, d, c0, stride); break;
    case 7: row_block<7>(x, wt, out, d, c0, stride); break;
    case 8: row_block<8>(x, wt, out, d, c0, stride); break;
    case 9: row_block<9>(x, wt, out, d, c0, stride); break;
    case 10: row_block<10>(x, wt, out, d, c0, stride); break;
    case 11: row_block<11>(x, wt, out, d, c0, stride); break;
    default: row_block<12>(x, wt, out, d, c0, stride); break;
  }
}

// The C logits of one row, written at out[c * stride].
inline void row_logits(const float* xr, const float* wt, float* out, int64_t d, int64_t C, int64_t stride) {
  int64_t c = 0;
  while (C - c > 12) {
    row_block<8>(xr, wt, out, d, c, stride);
    c += 8;
  }
  if (C > c) row_block_dispatch(static_cast<int>(C - c), xr, wt, out, d, c, stride);
}

// ---- float32 exp and log on 8 lanes (Cephes expf / logf polynomials) ----

inline __m256 exp8(__m256 x) {
  const __m256 hi = _mm256_set1_ps(88.3762626647949f), lo = _mm256_set1_ps(-88.3762626647949f);
  x = _mm256_max_ps(_mm256_min_ps(x, hi), lo);
  __m256 fx = _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f));
  fx = _mm256_floor_ps(fx);
  x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
  x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
  const __m256 z = _mm256_mul_ps(x, x);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
  y = _mm256_fmadd_ps(y, z, x);
  y = _mm256_add_ps(y, _mm256_set1_ps(1.0f));
  const __m256i n = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(fx), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(n));
}

// log of x > 0 (the softmax normaliser s >= 1 here).
inline __m256 log8(__m256 x) {
  const __m256i bits = _mm256_castps_si256(x);
  __m256 e = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(bits, 23), _mm256_set1_epi32(126)));
  // mantissa in [0.5, 1)
  x = _mm256_castsi256_ps(_mm256_or_si256(_mm256_and_si256(bits, _mm256_set1_epi32(0x007fffff)),
                                          _mm256_set1_epi32(0x3f000000)));
  const __m256 small = _mm256_cmp_ps(x, _mm256_set1_ps(0.707106781186547524f), _CMP_LT_OQ);
  const __m256 add = _mm256_and_ps(x, small);
  x = _mm256_sub_ps(x, _mm256_set1_ps(1.0f));
  e = _mm256_sub_ps(e, _mm256_and_ps(_mm256_set1_ps(1.0f), small));
  x = _mm256_add_ps(x, add);
  const __m256 z = _mm256_mul_ps(x, x);
  __m256 y = _mm256_set1_ps(7.0376836292e-2f);
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(-1.1514610310e-1f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.1676998740e-1f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(-1.2420140846e-1f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.4249322787e-1f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(-1.6668057665e-1f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(2.0000714765e-1f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(-2.4999993993e-1f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(3.3333331174e-1f));
  y = _mm256_mul_ps(_mm256_mul_ps(y, x), z);
  y = _mm256_fmadd_ps(e, _mm256_set1_ps(-2.12194440e-4f), y);
  y = _mm256_fnmadd_ps(z, _mm256_set1_ps(0.5f), y);
  x = _mm256_add_ps(x, y);
  return _mm256_fmadd_ps(e, _mm256_set1_ps(0.693359375f), x);
}

enum Kind : int64_t { kEntropy = 0, kMargin = 1, kLeastConfidence = 2 };

// Scores of 8 rows from their logits z (C x 8, class-major) and the bias b.
inline __m256 scores8(const float* z, const float* b, int64_t C, int64_t kind) {
  __m256 m = _mm256_set1_ps(-INFINITY), m2 = _mm256_set1_ps(-INFINITY);
  for (int64_t c = 0; c < C; ++c) {
    const __m256 v = _mm256_add_ps(_mm256_load_ps(z + 8 * c), _mm256_set1_ps(b[c]));
    m2 = _mm256_max_ps(m2, _mm256_min_ps(m, v));
    m = _mm256_max_ps(m, v);
  }
  __m256 s = _mm256_setzero_ps(), t = _mm256_setzero_ps();
  // v = z_c - m is clamped below (NaN kept: max returns its second operand then) so that a class
  // with p = 0 -- a -inf bias, or a gap past the float range -- adds e v = 0 * (-88.4) = 0 to t,
  // not 0 * (-inf) = NaN; exp8 clamps there already, so e is unchanged.
  const __m256 lowest = _mm256_set1_ps(-88.3762626647949f);
  for (int64_t c = 0; c < C; ++c) {
    const __m256 v = _mm256_max_ps(lowest, _mm256_sub_ps(_mm256_add_ps(_mm256_load_ps(z + 8 * c), _mm256_set1_ps(b[c])), m));
    const __m256 e = exp8(v);
    s = _mm256_add_ps(s, e);
    t = _mm256_fmadd_ps(e, v, t);
  }
  const __m256 one = _mm256_set1_ps(1.0f);
  if (kind == kEntropy) return _mm256_sub_ps(log8(s), _mm256_div_ps(t, s));
  if (kind == kMargin) {
    const __m256 e2 = exp8(_mm256_sub_ps(m2, m));
    return _mm256_div_ps(_mm256_sub_ps(e2, one), s);
  }
  return _mm256_sub_ps(one, _mm256_div_ps(one, s));
}

void rows(const float* x, const float* wt, float* out, int64_t d, int64_t C, int64_t lo, int64_t hi) {
  for (int64_t r = lo; r < hi; ++r) row_logits(x + r * d, wt, out + r * C, d, C, 1);
}

void score_rows(const float* x, const float* wt, const float* b, float* out, int64_t d, int64_t C, int64_t kind,
                int64_t lo, int64_t hi, float* z) {
  for (int64_t r0 = lo; r0 < hi; r0 += 8) {
    const int64_t k = std::min<int64_t>(8, hi - r0);
    for (int64_t i = 0; i < k; ++i) row_logits(x + (r0 + i) * d, wt, z + i, d, C, 8);
    for (int64_t i = k; i < 8; ++i)
      for (int64_t c = 0; c < C; ++c) z[8 * c + i] = 0.0f;
    alignas(32) float s[8];
    _mm256_store_ps(s, scores8(z, b, C, kind));
    for (int64_t i = 0; i < k; ++i) out[r0 + i] = s[i];
  }
}

struct Work {
  const float* x;
  const float* wt;
  const float* b = nullptr;  // with b: uncertainty scores of `kind`; without: logits
  float* out;
  int64_t n, d, C, kind = 0, chunk, n_chunks;
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};
};

void drain(Work& w) {
  std::vector<float> buffer;
  float* z = nullptr;
  if (w.b != nullptr) {  // class-major logits of 8 rows, 32-byte aligned
    buffer.assign(8 * w.C + 8, 0.0f);
    z = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(buffer.data()) + 31) & ~uintptr_t(31));
  }
  for (;;) {
    const int64_t i = w.next.fetch_add(1, std::memory_order_relaxed);
    if (i >= w.n_chunks) return;
    const int64_t lo = i * w.chunk, hi = std::min(w.n, (i + 1) * w.chunk);
    if (w.b != nullptr)
      score_rows(w.x, w.wt, w.b, w.out, w.d, w.C, w.kind, lo, hi, z);
    else
      rows(w.x, w.wt, w.out, w.d, w.C, lo, hi);
    w.done.fetch_add(1, std::memory_order_release);
  }
}

constexpr int64_t kChunkRows = 2048;  // a multiple of 8

void run(ffi::ThreadPool& pool, const std::shared_ptr<Work>& w) {
  w->chunk = kChunkRows;
  w->n_chunks = (w->n + kChunkRows - 1) / kChunkRows;
  if (w->n == 0) return;
  const int64_t helpers = std::min<int64_t>(pool.num_threads(), w->n_chunks - 1);
  for (int64_t t = 0; t < helpers; ++t) pool.Schedule([w] { drain(*w); });
  drain(*w);
  // Every chunk is claimed by now; wait only for those still being computed by the helpers.
  while (w->done.load(std::memory_order_acquire) < w->n_chunks) std::this_thread::yield();
}

ffi::Error NarrowMatmulImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> wt,
                            ffi::ResultBuffer<ffi::F32> out) {
  const auto xd = x.dimensions();
  const auto wd = wt.dimensions();
  const auto od = out->dimensions();
  if (xd.size() != 2 || wd.size() != 2 || od.size() != 2)
    return ffi::Error::InvalidArgument("alband_narrow_matmul: x, wt and out must be 2-D");
  if (xd[1] != wd[1] || od[0] != xd[0] || od[1] != wd[0])
    return ffi::Error::InvalidArgument("alband_narrow_matmul: shapes must be x (N, d), wt (C, d), out (N, C)");
  auto w = std::make_shared<Work>();
  w->x = x.typed_data();
  w->wt = wt.typed_data();
  w->out = out->typed_data();
  w->n = xd[0];
  w->d = xd[1];
  w->C = wd[0];
  if (w->C > 0) run(pool, w);
  return ffi::Error::Success();
}

ffi::Error PoolUncertaintyImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> wt,
                               ffi::Buffer<ffi::F32> b, ffi::ResultBuffer<ffi::F32> out, int64_t kind) {
  const auto xd = x.dimensions();
  const auto wd = wt.dimensions();
  const auto bd = b.dimensions();
  const auto od = out->dimensions();
  if (xd.size() != 2 || wd.size() != 2 || bd.size() != 1 || od.size() != 1)
    return ffi::Error::InvalidArgument("alband_pool_uncertainty: x (N, d), wt (C, d), b (C,), out (N,)");
  if (xd[1] != wd[1] || bd[0] != wd[0] || od[0] != xd[0] || wd[0] < 1)
    return ffi::Error::InvalidArgument("alband_pool_uncertainty: shapes must be x (N, d), wt (C, d), b (C,), out (N,)");
  if (kind < kEntropy || kind > kLeastConfidence)
    return ffi::Error::InvalidArgument("alband_pool_uncertainty: kind must be 0 (entropy), 1 (margin) or 2 (least confidence)");
  auto w = std::make_shared<Work>();
  w->x = x.typed_data();
  w->wt = wt.typed_data();
  w->b = b.typed_data();
  w->out = out->typed_data();
  w->n = xd[0];
  w->d = xd[1];
  w->C = wd[0];
  w->kind = kind;
  run(pool, w);
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(AlbandNarrowMatmul, NarrowMatmulImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(AlbandPoolUncertainty, PoolUncertaintyImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int64_t>("kind"));
