// Row statistics of softmax-like cpu kernels (softmax, log_softmax, cross_entropy): the max and
// sum(exp(x - max)) of a row in one sweep from memory, and streaming stores for large outputs.
//
// A vocabulary-sized row (128k f32 = 512 KiB) does not stay in L1/L2 between a max pass and an
// exp pass, so the row is cut into 8 KiB chunks whose (max, sum) pairs are merged online. The
// portable sweep reads each chunk from memory once for its max and again from L1 for its
// exponentials. The AVX2 sweep reads each chunk once: its exponentials are taken against the max
// of the chunks before and rescaled afterwards, so memory streams while the arithmetic runs.
#pragma once

#include <cmath>
#include <cstdlib>
#include <vector>

#include "cpu/cpu_common.h"
#include "cpu/simd.h"
#include "cpu/simd512.h"

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

// exp for x <= 88 (x minus a running max, at most kMaxLead above it) or NaN: no overflow side,
// and below -87 it gives exp(-87) ~ 1.6e-38 instead of 0, which a sum holding a term near 1 or
// more cannot notice. The max with its operands in this order passes NaN through. ln2 in two
// parts as exp8, and a degree-5 near-minimax polynomial (relative error 1.35e-7, about an f32
// ulp; with rounding within 3 ulp, where exp8's degree 7 gives 2): the f32 rows' sweep is bound
// by its arithmetic, and f32 softmax/cross_entropy results carry a tolerance of 2e-5.
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
  __m256 y = _mm256_set1_ps(8.2976548001e-3f);
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1915383190e-2f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6667574644e-1f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.9998894334e-1f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(9.9999970198e-1f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.0000001192e+0f));
  // n is in [-126, 127], and where n = -126 (x near -87) r >= 0.33 so y >= 1.4: the product with
  // 2^n stays normal, and adding n to y's exponent bits is exact (an integer op, not a multiply).
  __m256i e = _mm256_add_epi32(_mm256_castps_si256(y), _mm256_slli_epi32(n, 23));
  return _mm256_castsi256_ps(e);
}

// exp8_nonpositive at the precision of f16/bf16 rows: exp_poly4 and ln2 in one constant (see
// exp8_coarse), under 4e-6 relative; the same range behaviour.
FS_AVX2 inline __m256 exp8_nonpositive_coarse(__m256 x) {
  const __m256 shift = _mm256_set1_ps(12582912.0f);
  __m256 xc = _mm256_max_ps(_mm256_set1_ps(-87.0f), x);
  __m256 fn =
      _mm256_sub_ps(_mm256_fmadd_ps(xc, _mm256_set1_ps(1.44269504088896341f), shift), shift);
  __m256i n = _mm256_cvtps_epi32(fn);
  __m256 r = _mm256_fnmadd_ps(fn, _mm256_set1_ps(0.693147180559945f), xc);
  return _mm256_castsi256_ps(
      _mm256_add_epi32(_mm256_castps_si256(exp_poly4(r)), _mm256_slli_epi32(n, 23)));
}

// exp(x) for x <= 88 in a row of T: f32 rows keep exp_f32's precision, f16/bf16 rows take the
// coarse form, whose error stays far below their rounding.
template <typename T>
FS_AVX2 inline __m256 exp8_row(__m256 x) {
  if constexpr (std::is_same_v<T, float>)
    return exp8_nonpositive(x);
  else
    return exp8_nonpositive_coarse(x);
}

// exp8_row with exp8's exact 0 below -87, for values that are stored; NaN stays NaN.
template <typename T>
FS_AVX2 inline __m256 exp8_row_exact(__m256 x) {
  __m256 keep = _mm256_cmp_ps(x, _mm256_set1_ps(-87.0f), _CMP_NLT_UQ);
  return _mm256_and_ps(exp8_row<T>(x), keep);
}

// Row maximum, 16 lanes a step; NaNs are skipped (max_ps keeps its second operand), as row_max.
template <typename T>
FS_AVX2 inline float row_max16(const T* x, int64_t n) {
  __m256 m0 = _mm256_set1_ps(-INFINITY), m1 = m0, m2 = m0, m3 = m0, a, b, c, d;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    load16(x + i, a, b), load16(x + i + 16, c, d);
    m0 = _mm256_max_ps(a, m0), m1 = _mm256_max_ps(b, m1);
    m2 = _mm256_max_ps(c, m2), m3 = _mm256_max_ps(d, m3);
  }
  for (; i + 16 <= n; i += 16) {
    load16(x + i, a, b);
    m0 = _mm256_max_ps(a, m0), m1 = _mm256_max_ps(b, m1);
  }
  float m = hmax8(_mm256_max_ps(_mm256_max_ps(m0, m1), _mm256_max_ps(m2, m3)));
  for (; i < n; ++i) m = std::max(m, load_f(x[i]));
  return m;
}

// sum(exp(x - m)) of a chunk in one read, with the chunk's max beside it (NaN skipped, as
// row_max). `m` is the running max of the chunks before, not of this one: an exponential of
// x - m up to exp(kMaxLead) is fine in f32 and the caller rescales after the chunk; past that
// lead (where the exponent add overflows) the caller redoes the chunk against its own max. When
// `e` is given the exponentials are stored there (exact 0 below -87, as exp_f32), in 16-element
// blocks that start `phase` elements in (the elements before run one at a time): a pass reading
// `e` back must use the same blocks, since bf16 blocks hold their lanes in load16's order.
inline constexpr float kMaxLead = 64.0f;
template <typename T>
FS_AVX2 inline float chunk_sum_exp16(const T* x, int64_t n, float m, float& chunk_max,
                                     float* e = nullptr, int64_t phase = 0, int ahead = 0) {
  float s = 0, cm = -INFINITY;
  int64_t i = 0;
  for (; i < std::min(phase, n); ++i) {
    float xv = load_f(x[i]), v = exp_f32(xv - m);
    if (e) e[i] = v;
    s += v, cm = std::max(cm, xv);
  }
  __m256 vm = _mm256_set1_ps(m), s0 = _mm256_setzero_ps(), s1 = s0, a, b;
  __m256 m0 = _mm256_set1_ps(-INFINITY), m1 = m0;
  for (; i + 16 <= n; i += 16) {
    if (ahead > 0) _mm_prefetch(reinterpret_cast<const char*>(x + i) + ahead, _MM_HINT_T0);
    load16(x + i, a, b);
    m0 = _mm256_max_ps(a, m0), m1 = _mm256_max_ps(b, m1);
    a = _mm256_sub_ps(a, vm), b = _mm256_sub_ps(b, vm);
    if (e) {
      a = exp8_row_exact<T>(a), b = exp8_row_exact<T>(b);
      _mm256_storeu_ps(e + i, a), _mm256_storeu_ps(e + i + 8, b);
    } else {
      a = exp8_row<T>(a), b = exp8_row<T>(b);
    }
    s0 = _mm256_add_ps(s0, a), s1 = _mm256_add_ps(s1, b);
  }
  s += hsum8(_mm256_add_ps(s0, s1));
  cm = std::max(cm, hmax8(_mm256_max_ps(m0, m1)));
  for (; i < n; ++i) {
    float xv = load_f(x[i]), v = exp_f32(xv - m);
    if (e) e[i] = v;
    s += v, cm = std::max(cm, xv);
  }
  chunk_max = cm;
  return s;
}

// The shift of a row's first chunk that holds a finite value: the max of its first 16 elements
// (a guess: chunk_sum_exp16 takes a lead up to kMaxLead), else of the whole chunk; -inf when the
// chunk has no finite value (all -inf, or NaN).
template <typename T>
FS_AVX2 inline float first_shift(const T* x, int64_t n) {
  float m = -INFINITY;
  for (int64_t i = 0; i < std::min<int64_t>(n, 16); ++i) m = std::max(m, load_f(x[i]));
  return m != -INFINITY ? m : row_max16(x, n);
}

template <typename T>
FS_AVX2 inline float chunk_sum16(const T* x, int64_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, a, b;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    load16(x + i, a, b);
    s0 = _mm256_add_ps(s0, a), s1 = _mm256_add_ps(s1, b);
  }
  float s = hsum8(_mm256_add_ps(s0, s1));
  for (; i < n; ++i) s += load_f(x[i]);
  return s;
}

// row_stats with AVX2, reading the row once: each chunk's exponentials are taken against the
// running max of the chunks before (chunk_sum_exp16), then the sum is rescaled when the chunk
// raised the max. -inf chunks before the first finite value add nothing, as in merge_chunk.
// `ahead`: bytes prefetched ahead of the loads (0: none).
template <typename T>
FS_AVX2 RowStats row_stats16(const T* x, int64_t n, bool with_total, int ahead = 0) {
  RowStats s;
  for (int64_t b = 0; b < n; b += kStatChunk<T>) {
    int64_t len = std::min(kStatChunk<T>, n - b);
    const T* c = x + b;
    if (with_total) s.total += chunk_sum16(c, len);
    if (s.max == -INFINITY) {
      s.max = first_shift(c, len);
      if (s.max == -INFINITY) {
        if (std::isnan(chunk_sum16(c, len))) s.sum = NAN;  // see merge_chunk
        continue;
      }
    }
    float cm;
    float part = chunk_sum_exp16(c, len, s.max, cm, nullptr, 0, ahead);
    if (cm > s.max + kMaxLead) {  // rare: a jump the exponentials cannot hold; redo the chunk
      s.sum *= exp_f32(s.max - cm);
      s.max = cm;
      part = chunk_sum_exp16(c, len, s.max, cm);
    }
    s.sum += part;
    if (cm > s.max) {
      s.sum *= exp_f32(s.max - cm);
      s.max = cm;
    }
  }
  return s;
}

// f16/bf16 rows shift by whole multiples of ln2: exp(x - k ln2) with k an integer folds the
// shift into the range reduction's rounding constant (c = 1.5 * 2^23 - k), so x - max costs no
// subtraction and t's low mantissa bits are the result's exponent itself, and moving a sum from
// shift k to k' multiplies it by 2^(k - k'), exactly. The chunk's max still decides k.
inline constexpr double kLn2 = 0.69314718055994531;
// Shifts beyond this (maxima past 2^19 in size) take the f32 rows' path: t must stay in
// [2^23, 2^24) for its low bits to be the exponent.
inline constexpr float kMaxPow2Max = 524288.0f;

// The shift k for a row maximum m: round(m / ln2).
inline float pow2_shift(float m) {
  return std::nearbyint(m * 1.44269504088896341f);
}

// exp(r), |r| <= ln2/2, for bf16 rows: a degree-3 near-minimax fit of relative error 7.5e-5,
// a fiftieth of a bf16 ulp (stored f16 exponentials keep exp_poly4: 7.5e-5 would be a sixth of
// theirs).
FS_AVX2 inline __m256 exp_poly3(__m256 r) {
  __m256 p = _mm256_set1_ps(1.6566842794e-1f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0496333838e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0001641512e+0f));
  return _mm256_fmadd_ps(p, r, _mm256_set1_ps(9.9992805719e-1f));
}

// The polynomial degree of exp8_pow2 for the stored exponentials of a T row (softmax): 4 for f16,
// 3 for bf16 (see exp_poly3). A loss reduces a row to one log-sum, where degree 3's 7.5e-5
// relative becomes at most 7.5e-5 absolute; f16's own rounding of a logit in [1, 2) already
// moves the loss by up to 2^-11 (4.9e-4), so cross_entropy takes degree 3 for f16 rows too.
template <typename T>
inline constexpr int kPow2Degree = std::is_same_v<T, Half> ? 4 : 3;

// exp(x - k ln2) with ln2 in one constant (as exp8_coarse) and a polynomial of `Degree`, for
// x - k ln2 in [-87, 88], given c = 1.5 * 2^23 - k; NaN stays NaN. x's NaNs come from 16-bit
// values, whose low 16 bits are zero, so the exponent add leaves them NaN.
template <int Degree>
FS_AVX2 inline __m256 exp8_pow2(__m256 x, __m256 c) {
  static_assert(Degree == 3 || Degree == 4);
  __m256 t = _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), c);
  __m256 fn = _mm256_sub_ps(t, c);  // round(x / ln2), exact in t's range
  __m256 r = _mm256_fnmadd_ps(fn, _mm256_set1_ps(0.693147180559945f), x);
  __m256 p = Degree == 4 ? exp_poly4(r) : exp_poly3(r);
  return _mm256_castsi256_ps(
      _mm256_add_epi32(_mm256_castps_si256(p), _mm256_slli_epi32(_mm256_castps_si256(t), 23)));
}

// The vector part of chunk_sum_pow2: 16-element blocks [i, n) against c = 1.5 * 2^23 - k, below
// `lo` = k ln2 - 87 clamped (sums) or stored as 0 (Store); returns the blocks' sum and folds their
// max into `cm`. One loop per Store so that neither carries the other's branch, and one
// accumulator each for the sum and the max: with two of each, the constants and temporaries
// left no register for the last accumulator, which gcc kept on the stack, so every iteration
// waited on a store-to-load round trip (the f16 and bf16 sums ran 7-46% slower, one thread, rows
// in L2).
template <typename T, int Degree, bool Store>
FS_AVX2 inline float sweep_pow2(const T* x, int64_t& i, int64_t n, __m256 c, __m256 lo, float* e,
                                int ahead, float& cm) {
  __m256 sum = _mm256_setzero_ps(), max = _mm256_set1_ps(-INFINITY), a, b;
  for (; i + 16 <= n; i += 16) {
    if (ahead > 0) _mm_prefetch(reinterpret_cast<const char*>(x + i) + ahead, _MM_HINT_T0);
    load16(x + i, a, b);
    max = _mm256_max_ps(_mm256_max_ps(a, b), max);
    if constexpr (Store) {
      // Lanes below the range compute garbage that the mask clears (NaN lanes are kept).
      a = _mm256_and_ps(exp8_pow2<Degree>(a, c), _mm256_cmp_ps(a, lo, _CMP_NLT_UQ));
      b = _mm256_and_ps(exp8_pow2<Degree>(b, c), _mm256_cmp_ps(b, lo, _CMP_NLT_UQ));
      _mm256_storeu_ps(e + i, a), _mm256_storeu_ps(e + i + 8, b);
    } else {
      // max(lo, v) keeps NaN (max_ps returns its second operand then).
      a = exp8_pow2<Degree>(_mm256_max_ps(lo, a), c);
      b = exp8_pow2<Degree>(_mm256_max_ps(lo, b), c);
    }
    sum = _mm256_add_ps(sum, _mm256_add_ps(a, b));
  }
  cm = std::max(cm, hmax8(max));
  return hsum8(sum);
}

// sweep_pow2 on 32-element blocks with AVX-512, from i while a whole block fits (sweep_pow2
// takes what is left): about half the instructions per element of the AVX2 loop, which is what
// bounds these rows. One cache line per step, so one prefetch.
template <typename T, int Degree, bool Store>
FS_AVX512 float sweep_pow2_512(const T* x, int64_t& i, int64_t n, float k, float lo_value, float* e,
                               int ahead, float& cm) {
  const __m512 c = _mm512_set1_ps(12582912.0f - k), lo = _mm512_set1_ps(lo_value);
  __m512 sum = _mm512_setzero_ps(), max = _mm512_set1_ps(-INFINITY), a, b;
  for (; i + 32 <= n; i += 32) {
    if (ahead > 0) _mm_prefetch(reinterpret_cast<const char*>(x + i) + ahead, _MM_HINT_T0);
    load32(x + i, a, b);
    max = _mm512_max_ps(_mm512_max_ps(a, b), max);
    if constexpr (Store) {
      a = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(a, lo, _CMP_NLT_UQ), exp16_pow2<Degree>(a, c));
      b = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(b, lo, _CMP_NLT_UQ), exp16_pow2<Degree>(b, c));
      _mm512_storeu_ps(e + i, a), _mm512_storeu_ps(e + i + 16, b);
    } else {
      a = exp16_pow2<Degree>(_mm512_max_ps(lo, a), c);
      b = exp16_pow2<Degree>(_mm512_max_ps(lo, b), c);
    }
    sum = _mm512_add_ps(sum, _mm512_add_ps(a, b));
  }
  cm = std::max(cm, _mm512_reduce_max_ps(max));
  return _mm512_reduce_add_ps(sum);
}

// sum(exp(x - k ln2)) of a chunk of a 16-bit row in one read, with the chunk's max (NaN skipped),
// as chunk_sum_exp16 with the shift k. Inputs below k ln2 - 87 are raised to it when summed
// (they add ~1e-38 each); when `e` is given the exponentials are stored there instead, exactly 0
// below k ln2 - 87, on the blocks that start `phase` elements in: with AVX-512, 32-element blocks
// while they fit, then 16-element ones (scale_chunk512 in norm.cc reads them back on that grid).
// `ahead`: bytes prefetched ahead of the loads (0: none).
template <typename T, int Degree = kPow2Degree<T>>
FS_AVX2 inline float chunk_sum_pow2(const T* x, int64_t n, float k, float& chunk_max,
                                    float* e = nullptr, int64_t phase = 0, int ahead = 0) {
  const double shift = static_cast<double>(k) * kLn2;
  float s = 0, cm = -INFINITY;
  auto one = [&](int64_t i) {
    float xv = load_f(x[i]), v = exp_f32(static_cast<float>(xv - shift));
    if (e) e[i] = v;
    s += v, cm = std::max(cm, xv);
  };
  int64_t i = 0;
  for (; i < std::min(phase, n); ++i) one(i);
  const float lo_value = static_cast<float>(shift - 87);
  if (has_avx512())
    s += e ? sweep_pow2_512<T, Degree, true>(x, i, n, k, lo_value, e, ahead, cm)
           : sweep_pow2_512<T, Degree, false>(x, i, n, k, lo_value, e, ahead, cm);
  const __m256 c = _mm256_set1_ps(12582912.0f - k), lo = _mm256_set1_ps(lo_value);
  s += e ? sweep_pow2<T, Degree, true>(x, i, n, c, lo, e, ahead, cm)
         : sweep_pow2<T, Degree, false>(x, i, n, c, lo, e, ahead, cm);
  for (; i < n; ++i) one(i);
  chunk_max = cm;
  return s;
}

// The running (shift, sum) of a 16-bit row over shifts k ln2: folds in one chunk whose
// exponentials `part` were taken against k and whose max is cm. Returns false when the chunk's
// max left the range the shifts cover (then the row takes the f32 path).
struct Pow2Sum {
  float k = -INFINITY;  // -inf: no finite value yet
  float sum = 0;
};
inline bool pow2_raise(Pow2Sum& s, float cm) {
  if (!(cm < kMaxPow2Max)) return false;  // +inf or huge (NaN never reaches here: max skips it)
  float k = pow2_shift(cm);
  if (k > s.k) s.sum = std::ldexp(s.sum, static_cast<int>(s.k - k)), s.k = k;
  return true;
}

// The first shift of a row at chunk `c`: from its first 16 elements (a guess that the lead
// covers) else the whole chunk; false when out of range. k stays -inf for a chunk with nothing
// finite (all -inf, or NaN, which `sum` records as in merge_chunk).
template <typename T>
FS_AVX2 inline bool pow2_start(Pow2Sum& s, const T* c, int64_t len) {
  float m = first_shift(c, len);
  if (m == -INFINITY) {
    if (std::isnan(chunk_sum16(c, len))) s.sum = NAN;
    return true;
  }
  if (!(std::abs(m) < kMaxPow2Max)) return false;
  s.k = pow2_shift(m);
  return true;
}

// One chunk of a 16-bit row into the running sum (exponentials stored in `e` when given);
// false when the row must take the f32 path instead.
// `used` (when given) receives the shift the exponentials were taken against (-inf: none were).
template <typename T, int Degree = kPow2Degree<T>>
FS_AVX2 inline bool pow2_chunk(Pow2Sum& s, const T* c, int64_t len, float* e = nullptr,
                               int64_t phase = 0, float* used = nullptr, int ahead = 0) {
  if (used) *used = -INFINITY;
  if (s.k == -INFINITY) {
    if (!pow2_start(s, c, len)) return false;
    if (s.k == -INFINITY) return true;
  }
  float cm;
  float part = chunk_sum_pow2<T, Degree>(c, len, s.k, cm, e, phase, ahead);
  if (cm > static_cast<float>(s.k * kLn2) + kMaxLead) {  // rare: redo against the new max
    if (!pow2_raise(s, cm)) return false;
    part = chunk_sum_pow2<T, Degree>(c, len, s.k, cm, e, phase, ahead);
  }
  if (used) *used = s.k;
  s.sum += part;
  return cm > static_cast<float>(s.k * kLn2) ? pow2_raise(s, cm) : true;
}

}  // namespace simd
#endif

}  // namespace flagstone::ops::cpu
