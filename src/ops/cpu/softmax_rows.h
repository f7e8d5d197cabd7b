// Row statistics of softmax-like cpu kernels (softmax, log_softmax, cross_entropy): the max and
// sum(exp(x - max)) of a row in one sweep from memory, and streaming stores for large outputs.
//
// A vocabulary-sized row (128k f32 = 512 KiB) does not stay in L1/L2 between a max pass and an
// exp pass, so the row is cut into 8 KiB chunks: each chunk is read from memory once for its max
// and again from L1 for its exponentials, and the chunks' (max, sum) pairs are merged online. The
// AVX2 sweep also prefetches the next chunk while the current one is in the exp loop, so memory
// keeps streaming during the arithmetic.
#pragma once

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <vector>

#include "cpu/cpu_common.h"
#include "cpu/simd.h"

namespace flagstone::ops::cpu {

// Elements of T in one chunk: 8 KiB, a quarter of L1d, so the chunk survives its max pass.
template <typename T>
inline constexpr int64_t kStatChunk = 8192 / static_cast<int64_t>(sizeof(T));

// max and sum(exp(x - max)) of a row; `total` is sum(x) when asked for (label smoothing).
// A row of -inf only keeps max = -inf and sum = 0, so exp(x - max) is NaN downstream as in torch.
struct RowStats {
  float max = -INFINITY;
  float sum = 0;
  float total = 0;
};

// Folds in one chunk whose own max is `chunk_max`; `sum_exp(m)` gives the chunk's
// sum(exp(x - m)). Chunks that are -inf up to here add nothing (there is no finite shift yet,
// and against any later finite max they weigh exp(-inf) = 0).
// A chunk skipped that way may still hold NaN (the max passes over NaN), which must poison the
// row as torch's sum does: `sum_all()` gives the chunk's plain sum, NaN when it holds one.
template <typename F, typename G>
inline void merge_chunk(RowStats& s, float chunk_max, F&& sum_exp, G&& sum_all) {
  float m = std::max(s.max, chunk_max);
  if (m == -INFINITY) {
    if (std::isnan(sum_all())) s.sum = NAN;
    return;
  }
  s.sum = s.sum * exp_f32(s.max - m) + sum_exp(m);
  s.max = m;
}

// The portable sweep (loops that the compiler vectorizes for the build's baseline ISA).
template <typename T>
RowStats row_stats(const T* x, int64_t n, bool with_total) {
  RowStats s;
  for (int64_t b = 0; b < n; b += kStatChunk<T>) {
    int64_t len = std::min(kStatChunk<T>, n - b);
    const T* c = x + b;
    merge_chunk(
        s, row_max(c, len),
        [&](float m) { return row_sum(c, len, [m](float v) { return exp_f32(v - m); }); },
        [&] { return row_sum(c, len, [](float v) { return v; }); });
    if (with_total) s.total += row_sum(c, len, [](float v) { return v; });
  }
  return s;
}

// True when an output of `bytes` is better written with non-temporal stores: it cannot stay in
// the last-level cache anyway, and bypassing it saves the read-for-ownership of every line (a
// third of a copy's memory traffic). Below that size the consumer may still find it in cache.
// FLAGSTONE_CPU_STREAM_BYTES sets the threshold (tuning, and tests that force either path).
inline bool stream_output(size_t bytes) {
  static const size_t threshold = [] {
    if (const char* env = std::getenv("FLAGSTONE_CPU_STREAM_BYTES"))
      return static_cast<size_t>(std::strtoull(env, nullptr, 10));
    long l3 = 0;
#ifdef _SC_LEVEL3_CACHE_SIZE  // glibc; elsewhere assume a server-sized cache
    l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
#endif
    return l3 > 0 ? static_cast<size_t>(l3) : size_t{32} << 20;
  }();
  return bytes > threshold;
}

// A float buffer of at least n elements for the calling thread, kept across calls so that rows
// need no allocation and the buffer stays warm in L2. Beyond 16 MiB the caller's `spill` holds
// it instead, so a pool thread never keeps a giant buffer.
inline float* thread_scratch(size_t n, std::vector<float>& spill) {
  constexpr size_t kKeep = size_t{1} << 22;
  if (n > kKeep) {
    spill.resize(n);
    return spill.data();
  }
  thread_local std::vector<float> buf;
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}

#ifdef FS_CPU_X86
namespace simd {

// exp for x <= 0 (x minus the row's max) or NaN, feeding sums only: no overflow side, and below
// -87 it gives exp(-87) ~ 1.6e-38 instead of 0, which a sum holding exp(0) = 1 cannot notice.
// The max with its operands in this order passes NaN through. About half of exp8's work.
FS_AVX2 inline __m256 exp8_nonpositive(__m256 x) {
  const __m256 shift = _mm256_set1_ps(12582912.0f);
  __m256 xc = _mm256_max_ps(_mm256_set1_ps(-87.0f), x);
  __m256 t = _mm256_fmadd_ps(xc, _mm256_set1_ps(1.44269504088896341f), shift);
  __m256 fn = _mm256_sub_ps(t, shift);
  // From fn rather than t's bits: a NaN (any payload) converts to 0x80000000, which the shift
  // below turns into 0, so the exponent add keeps y NaN.
  __m256i n = _mm256_cvtps_epi32(fn);
  __m256 r = _mm256_fnmadd_ps(fn, _mm256_set1_ps(0.693359375f), xc);
  r = _mm256_fnmadd_ps(fn, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  __m256 y = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
  // n is in [-126, 0], and where n = -126 (x near -87) r >= 0.33 so y >= 1.4: the product with
  // 2^n stays normal, and adding n to y's exponent bits is exact (an integer op, not a multiply).
  __m256i e = _mm256_add_epi32(_mm256_castps_si256(y), _mm256_slli_epi32(n, 23));
  return _mm256_castsi256_ps(e);
}

// exp8_nonpositive with exp8's exact 0 below -87, for values that are stored; NaN stays NaN.
FS_AVX2 inline __m256 exp8_nonpositive_exact(__m256 x) {
  __m256 keep = _mm256_cmp_ps(x, _mm256_set1_ps(-87.0f), _CMP_NLT_UQ);
  return _mm256_and_ps(exp8_nonpositive(x), keep);
}

// sum(exp(x - m)) of a chunk already in L1, prefetching `next` (the following chunk, `next_n`
// elements) one cache line per 16 elements. When `e` is given the exponentials are stored there
// (exact below -87, as exp_f32).
template <typename T>
FS_AVX2 inline float chunk_sum_exp8(const T* x, int64_t n, float m, const T* next, int64_t next_n,
                                    float* e = nullptr) {
  __m256 vm = _mm256_set1_ps(m), s0 = _mm256_setzero_ps(), s1 = s0;
  constexpr int64_t kLine = 64 / static_cast<int64_t>(sizeof(T));
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    int64_t ahead = i / 16 * kLine;
    if (ahead < next_n) _mm_prefetch(reinterpret_cast<const char*>(next + ahead), _MM_HINT_T0);
    __m256 d0 = _mm256_sub_ps(load8(x + i), vm), d1 = _mm256_sub_ps(load8(x + i + 8), vm);
    if (e) {
      d0 = exp8_nonpositive_exact(d0), d1 = exp8_nonpositive_exact(d1);
      _mm256_storeu_ps(e + i, d0), _mm256_storeu_ps(e + i + 8, d1);
    } else {
      d0 = exp8_nonpositive(d0), d1 = exp8_nonpositive(d1);
    }
    s0 = _mm256_add_ps(s0, d0), s1 = _mm256_add_ps(s1, d1);
  }
  for (; i + 8 <= n; i += 8) {
    __m256 d = exp8_nonpositive_exact(_mm256_sub_ps(load8(x + i), vm));
    if (e) _mm256_storeu_ps(e + i, d);
    s0 = _mm256_add_ps(s0, d);
  }
  float s = hsum8(_mm256_add_ps(s0, s1));
  for (; i < n; ++i) {
    float v = exp_f32(load_f(x[i]) - m);
    if (e) e[i] = v;
    s += v;
  }
  return s;
}

template <typename T>
FS_AVX2 inline float chunk_sum8(const T* x, int64_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = s0;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = _mm256_add_ps(s0, load8(x + i));
    s1 = _mm256_add_ps(s1, load8(x + i + 8));
  }
  for (; i + 8 <= n; i += 8) s0 = _mm256_add_ps(s0, load8(x + i));
  float s = hsum8(_mm256_add_ps(s0, s1));
  for (; i < n; ++i) s += load_f(x[i]);
  return s;
}

// row_stats with AVX2: the same chunks and merge, the exp pass prefetching the next chunk.
template <typename T>
FS_AVX2 RowStats row_stats8(const T* x, int64_t n, bool with_total) {
  RowStats s;
  for (int64_t b = 0; b < n; b += kStatChunk<T>) {
    int64_t len = std::min(kStatChunk<T>, n - b);
    const T* c = x + b;
    int64_t next_n = std::min(kStatChunk<T>, n - b - len);
    float m = std::max(s.max, row_max8(c, len));
    if (m != -INFINITY) {
      s.sum = s.sum * exp_f32(s.max - m) + chunk_sum_exp8(c, len, m, c + len, next_n);
      s.max = m;
    } else if (std::isnan(chunk_sum8(c, len))) {
      s.sum = NAN;  // see merge_chunk
    }
    if (with_total) s.total += chunk_sum8(c, len);
  }
  return s;
}

// Non-temporal store of 8 lanes; p must be 32-byte aligned for f32, 16 for f16/bf16.
template <typename T>
FS_AVX2 inline void stream8(T* p, __m256 v) {
  if constexpr (std::is_same_v<T, float>)
    _mm256_stream_ps(p, v);
  else
    _mm_stream_si128(reinterpret_cast<__m128i*>(p), narrow8<T>(v));
}

// Where a streamed row may start its 8-lane stores: the first element of `p` at the stores'
// alignment (n when none is, e.g. an odd address).
template <typename T>
inline int64_t stream_head(const T* p, int64_t n) {
  constexpr uintptr_t kAlign = std::is_same_v<T, float> ? 32 : 16;
  auto a = reinterpret_cast<uintptr_t>(p);
  if (a % sizeof(T)) return n;
  return std::min<int64_t>(n, static_cast<int64_t>(((kAlign - a % kAlign) % kAlign) / sizeof(T)));
}

template <bool Stream, typename T>
FS_AVX2 inline void put8(T* p, __m256 v) {
  if constexpr (Stream)
    stream8(p, v);
  else
    store8(p, v);
}

}  // namespace simd
#endif

}  // namespace flagstone::ops::cpu
