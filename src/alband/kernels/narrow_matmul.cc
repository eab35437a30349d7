// alband: the product X @ W of a tall pool X (N, d) and a narrow matrix W (d, C), C small,
// as an XLA FFI custom call for the CPU (AVX2 + FMA).
//
// Why: XLA's CPU backend hands this shape to a general GEMM that runs at about a quarter of
// the FMA peak when C is 4-16; scoring a pool is then compute-bound at 2-3x the time of one
// read of X. Here each row of X is read once and multiplied against all C columns of W
// (given transposed, Wt (C, d), so both operands are read along d): per 8 floats of the row,
// one load of X and C fused multiply-adds against rows of Wt, which stay in L1.
// Accumulators: C <= 12 columns per block, one register each (two sets when C <= 6 so
// that consecutive FMAs do not wait on each other's latency). Rows are split into chunks
// that the threads of XLA's intra-op pool claim from an atomic counter.
//
// Summation order: 8 partial sums per column, added pairwise at the end, then the d % 8
// tail; so results differ from XLA's product by float rounding only.
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// out[c0 .. c0 + CB) = x . Wt[c0 + c] for one row x of length d.
template <int CB>
inline void row_block(const float* x, const float* wt, float* out, int64_t d, int64_t c0) {
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
    out[c0 + c] = value;
  }
}

inline void row_block_dispatch(int cb, const float* x, const float* wt, float* out, int64_t d, int64_t c0) {
  switch (cb) {
    case 1: row_block<1>(x, wt, out, d, c0); break;
    case 2: row_block<2>(x, wt, out, d, c0); break;
    case 3: row_block<3>(x, wt, out, d, c0); break;
    case 4: row_block<4>(x, wt, out, d, c0); break;
    case 5: row_block<5>(x, wt, out, d, c0); break;
    case 6: row_block<6>(x, wt, out, d, c0); break;
    case 7: row_block<7>(x, wt, out, d, c0); break;
    case 8: row_block<8>(x, wt, out, d, c0); break;
    case 9: row_block<9>(x, wt, out, d, c0); break;
    case 10: row_block<10>(x, wt, out, d, c0); break;
    case 11: row_block<11>(x, wt, out, d, c0); break;
    default: row_block<12>(x, wt, out, d, c0); break;
  }
}

void rows(const float* x, const float* wt, float* out, int64_t d, int64_t C, int64_t lo, int64_t hi) {
  for (int64_t r = lo; r < hi; ++r) {
    const float* xr = x + r * d;
    float* orow = out + r * C;
    int64_t c = 0;
    while (C - c > 12) {
      row_block<8>(xr, wt, orow, d, c);
      c += 8;
    }
    if (C > c) row_block_dispatch(static_cast<int>(C - c), xr, wt, orow, d, c);
  }
}

struct Work {
  const float* x;
  const float* wt;
  float* out;
  int64_t n, d, C, chunk, n_chunks;
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};
};

void drain(Work& w) {
  for (;;) {
    const int64_t i = w.next.fetch_add(1, std::memory_order_relaxed);
    if (i >= w.n_chunks) return;
    rows(w.x, w.wt, w.out, w.d, w.C, i * w.chunk, std::min(w.n, (i + 1) * w.chunk));
    w.done.fetch_add(1, std::memory_order_release);
  }
}

constexpr int64_t kChunkRows = 2048;

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
  w->chunk = kChunkRows;
  w->n_chunks = (w->n + kChunkRows - 1) / kChunkRows;
  if (w->n == 0 || w->C == 0) return ffi::Error::Success();
  const int64_t helpers = std::min<int64_t>(pool.num_threads(), w->n_chunks - 1);
  for (int64_t t = 0; t < helpers; ++t) pool.Schedule([w] { drain(*w); });
  drain(*w);
  // Every chunk is claimed by now; wait only for those still being computed by the helpers.
  while (w->done.load(std::memory_order_acquire) < w->n_chunks) std::this_thread::yield();
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(AlbandNarrowMatmul, NarrowMatmulImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());
