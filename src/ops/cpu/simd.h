// AVX2/FMA/F16C building blocks for the cpu kernels' fast row loops: 8-wide loads and stores of
// f32/f16/bf16, a vector exp matching exp_f32, and horizontal reductions.
//
// The library is built for baseline x86-64, so these functions carry target attributes and the
// kernels call them only from functions with the same attributes, chosen once at run time with
// has_avx2(); other architectures compile none of it (FS_CPU_X86 is undefined there).
#pragma once

#include <unistd.h>

#include <cstdlib>

#include "cpu/cpu_common.h"
#include "flagstone/runtime/cpu_features.h"

#if defined(__x86_64__) || defined(__i386__)
#define FS_CPU_X86 1
// GCC 12's AVX-512 intrinsics pass an undefined vector (`__Y = __Y`) as the unused merge source of
// their mask forms, which -Wuninitialized reports once they are inlined (GCC bug 105593, fixed in
// 13). The warnings are located in the headers, so silencing them there leaves our own code
// checked.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#else
#include <immintrin.h>
#endif
#define FS_AVX2 __attribute__((target("avx2,fma,f16c")))
#endif

namespace flagstone::ops::cpu {

// True when the kernels may use AVX2, FMA and F16C (runtime::cpu_isa(), checked once). False off
// x86, and when FLAGSTONE_CPU_ISA=baseline, which lets tests run the portable loops on an AVX2
// machine.
inline bool has_avx2() {
  static const bool yes = runtime::cpu_isa() >= runtime::CpuIsa::kAvx2;
  return yes;
}

// True when the kernels may also use AVX-512 F/BW/VL/DQ (simd512.h); FLAGSTONE_CPU_ISA=avx2 keeps
// them on the AVX2 rows.
inline bool has_avx512() {
  static const bool yes = runtime::cpu_isa() >= runtime::CpuIsa::kAvx512;
  return yes;
}

// True when a call moving `bytes` (its inputs and output together) should write its output with
// non-temporal stores: the output cannot stay in the last-level cache beside the inputs anyway,
// and bypassing the cache saves the read-for-ownership of every line (a third of a copy's memory
// traffic). Below that size the consumer may still find the output in cache.
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

#ifdef FS_CPU_X86
namespace simd {

template <typename T>
FS_AVX2 inline __m256 load8(const T* p) {
  if constexpr (std::is_same_v<T, float>) {
    return _mm256_loadu_ps(p);
  } else if constexpr (std::is_same_v<T, Half>) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  } else {
    __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
  }
}

// f16/bf16 lanes packed into 128 bits, rounded to nearest even like store_f: F16C for half; for
// bf16 the same integer rounding as float_to_bf16, with NaN kept quiet.
template <typename T>
FS_AVX2 inline __m128i narrow8(__m256 v) {
  if constexpr (std::is_same_v<T, Half>) {
    return _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT);
  } else {
    __m256i bits = _mm256_castps_si256(v);
    __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
    __m256i rounded = _mm256_srli_epi32(
        _mm256_add_epi32(_mm256_add_epi32(bits, _mm256_set1_epi32(0x7fff)), lsb), 16);
    __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(0x40));
    __m256i is_nan = _mm256_cmpgt_epi32(_mm256_and_si256(bits, _mm256_set1_epi32(0x7fffffff)),
                                        _mm256_set1_epi32(0x7f800000));
    __m256i r = _mm256_blendv_epi8(rounded, quiet, is_nan);
    // packus works per 128-bit lane; the permute puts the two halves back in order.
    __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0x08);
    return _mm256_castsi256_si128(packed);
  }
}

template <typename T>
FS_AVX2 inline void store8(T* p, __m256 v) {
  if constexpr (std::is_same_v<T, float>)
    _mm256_storeu_ps(p, v);
  else
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), narrow8<T>(v));
}

// 16 elements as two f32 vectors, the row loops' main step. f32 and f16 keep element order;
// bf16 comes as its even elements in `a` and its odd ones in `b` (a shift and a mask of one
// 32-byte load, where element order would cost two shuffles more), and store16 puts them back.
// So a loop may combine operands of one dtype lane by lane and reduce in any order, but an f32
// scratch row written from bf16 lanes is in that order too: read it back in the same 16-element
// blocks.
template <typename T>
FS_AVX2 inline void load16(const T* p, __m256& a, __m256& b) {
  if constexpr (std::is_same_v<T, float>) {
    a = _mm256_loadu_ps(p), b = _mm256_loadu_ps(p + 8);
  } else if constexpr (std::is_same_v<T, Half>) {
    a = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    b = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 8)));
  } else {
    __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    a = _mm256_castsi256_ps(_mm256_slli_epi32(x, 16));
    b = _mm256_castsi256_ps(_mm256_and_si256(x, _mm256_set1_epi32(static_cast<int>(0xffff0000u))));
  }
}

// f32 bits rounded to nearest even at bf16 precision, still in 32 bits (the bf16 is the high
// half); NaN is left to the caller.
FS_AVX2 inline __m256i bf16_rounded(__m256 v) {
  __m256i bits = _mm256_castps_si256(v);
  __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
  return _mm256_add_epi32(_mm256_add_epi32(bits, _mm256_set1_epi32(0x7fff)), lsb);
}

// NaN lanes of v made quiet NaNs in r (rounding could carry a NaN's payload into infinity).
FS_AVX2 inline __m256i bf16_keep_nan(__m256 v, __m256i r) {
  __m256i quiet = _mm256_or_si256(_mm256_castps_si256(v), _mm256_set1_epi32(0x00400000));
  return _mm256_blendv_epi8(r, quiet, _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
}

// The 32 bytes of 16 elements stored by store16/stream16: one NaN test for both vectors, the
// per-lane NaN fix only when one is there. `MayBeNaN` false skips the test, for callers that
// know their values are not NaN (a bf16 NaN would round into the next binade, or -0).
template <typename T, bool MayBeNaN = true>
FS_AVX2 inline __m256i pack16(__m256 a, __m256 b) {
  if constexpr (std::is_same_v<T, Half>) {
    return _mm256_set_m128i(_mm256_cvtps_ph(b, _MM_FROUND_TO_NEAREST_INT),
                            _mm256_cvtps_ph(a, _MM_FROUND_TO_NEAREST_INT));
  } else {
    __m256i ra = bf16_rounded(a), rb = bf16_rounded(b);
    if (MayBeNaN && __builtin_expect(_mm256_movemask_ps(_mm256_cmp_ps(a, b, _CMP_UNORD_Q)) != 0, 0))
      ra = bf16_keep_nan(a, ra), rb = bf16_keep_nan(b, rb);
    // Even elements from a's high halves, odd ones from b's: the inverse of load16.
    return _mm256_blend_epi16(_mm256_srli_epi32(ra, 16), rb, 0xaa);
  }
}

template <typename T, bool MayBeNaN = true>
FS_AVX2 inline void store16(T* p, __m256 a, __m256 b) {
  if constexpr (std::is_same_v<T, float>)
    _mm256_storeu_ps(p, a), _mm256_storeu_ps(p + 8, b);
  else
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), pack16<T, MayBeNaN>(a, b));
}

// store16 with non-temporal stores; p must be 32-byte aligned.
template <typename T, bool MayBeNaN = true>
FS_AVX2 inline void stream16(T* p, __m256 a, __m256 b) {
  if constexpr (std::is_same_v<T, float>)
    _mm256_stream_ps(p, a), _mm256_stream_ps(p + 8, b);
  else
    _mm256_stream_si256(reinterpret_cast<__m256i*>(p), pack16<T, MayBeNaN>(a, b));
}

template <bool Stream, typename T, bool MayBeNaN = true>
FS_AVX2 inline void put16(T* p, __m256 a, __m256 b) {
  if constexpr (Stream)
    stream16<T, MayBeNaN>(p, a, b);
  else
    store16<T, MayBeNaN>(p, a, b);
}

// Elements of p before the first 32-byte aligned one, where a row's streamed 16-element stores
// can start (n when none is, e.g. an address not aligned to the element).
template <typename T>
inline int64_t aligned_head(const T* p, int64_t n) {
  auto a = reinterpret_cast<uintptr_t>(p);
  if (a % sizeof(T)) return n;
  return std::min<int64_t>(n, static_cast<int64_t>(((32 - a % 32) % 32) / sizeof(T)));
}

// e^r for r reduced to [-ln2 / 2, ln2 / 2]: exp_f32's polynomial on 8 lanes, with FMA.
FS_AVX2 inline __m256 exp8_reduced(__m256 r) {
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  return _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
}

// exp_f32 on 8 lanes (the same range reduction and polynomial, with FMA): within 2 ulp on
// [-87, 88.7], 0 below, inf above, NaN kept.
FS_AVX2 inline __m256 exp8(__m256 x) {
  const __m256 hi = _mm256_set1_ps(88.7228390f), lo = _mm256_set1_ps(-87.0f);
  const __m256 shift = _mm256_set1_ps(12582912.0f);
  __m256 xc = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
  __m256 t = _mm256_fmadd_ps(xc, _mm256_set1_ps(1.44269504088896341f), shift);
  __m256i n = _mm256_sub_epi32(_mm256_castps_si256(t), _mm256_castps_si256(shift));
  __m256 fn = _mm256_sub_ps(t, shift);
  __m256 r = _mm256_fnmadd_ps(fn, _mm256_set1_ps(0.693359375f), xc);
  r = _mm256_fnmadd_ps(fn, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 y = exp8_reduced(r);
  __m256i n1 = _mm256_srai_epi32(n, 1), n2 = _mm256_sub_epi32(n, n1);
  __m256i bias = _mm256_set1_epi32(127);
  y = _mm256_mul_ps(y, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23)));
  y = _mm256_mul_ps(y, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23)));
  y = _mm256_blendv_ps(y, _mm256_setzero_ps(), _mm256_cmp_ps(x, lo, _CMP_LT_OQ));
  y = _mm256_blendv_ps(y, _mm256_set1_ps(INFINITY), _mm256_cmp_ps(x, hi, _CMP_GT_OQ));
  return _mm256_blendv_ps(y, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

// Polynomial for exp(r), |r| <= ln2/2, at the precision f16/bf16 results need: a degree-4
// near-minimax fit of relative error 2.6e-6 (an f16 ulp is 4.9e-4, a bf16 one 3.9e-3).
FS_AVX2 inline __m256 exp_poly4(__m256 r) {
  __m256 p = _mm256_set1_ps(4.1458606119e-2f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6790907204e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0004358686e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(9.9996340486e-1f));
  return _mm256_fmadd_ps(p, r, _mm256_set1_ps(9.9999926144e-1f));
}

// exp for the rows of f16/bf16 kernels, within 4e-6 relative on [-87, 88] with about half of
// exp8's work: ln2 in one constant (the error it adds, |n| * 2e-9, is far below the
// polynomial's), and 2^n added to the exponent bits, which stays exact because the clamp keeps
// n in [-126, 127] with the product normal. Below -87 it gives exp(-87) ~ 1.6e-38 rather than 0;
// above 88, inf (as exp8); NaN stays NaN (it converts to n = 0x80000000, which the shift zeroes).
FS_AVX2 inline __m256 exp8_coarse(__m256 x) {
  const __m256 shift = _mm256_set1_ps(12582912.0f), hi = _mm256_set1_ps(88.0f);
  // min/max return their second operand when one is NaN, so NaN passes both.
  __m256 xc = _mm256_max_ps(_mm256_set1_ps(-87.0f), _mm256_min_ps(hi, x));
  __m256 fn =
      _mm256_sub_ps(_mm256_fmadd_ps(xc, _mm256_set1_ps(1.44269504088896341f), shift), shift);
  __m256i n = _mm256_cvtps_epi32(fn);
  __m256 r = _mm256_fnmadd_ps(fn, _mm256_set1_ps(0.693147180559945f), xc);
  __m256 y = _mm256_castsi256_ps(
      _mm256_add_epi32(_mm256_castps_si256(exp_poly4(r)), _mm256_slli_epi32(n, 23)));
  return _mm256_blendv_ps(y, _mm256_set1_ps(INFINITY), _mm256_cmp_ps(x, hi, _CMP_GT_OQ));
}

FS_AVX2 inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

FS_AVX2 inline float hmax8(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

// Row maximum; NaNs are skipped (max_ps keeps its second operand), as row_max does.
template <typename T>
FS_AVX2 inline float row_max8(const T* x, int64_t n) {
  __m256 m0 = _mm256_set1_ps(-INFINITY), m1 = m0, m2 = m0, m3 = m0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    m0 = _mm256_max_ps(load8(x + i), m0);
    m1 = _mm256_max_ps(load8(x + i + 8), m1);
    m2 = _mm256_max_ps(load8(x + i + 16), m2);
    m3 = _mm256_max_ps(load8(x + i + 24), m3);
  }
  for (; i + 8 <= n; i += 8) m0 = _mm256_max_ps(load8(x + i), m0);
  float m = hmax8(_mm256_max_ps(_mm256_max_ps(m0, m1), _mm256_max_ps(m2, m3)));
  for (; i < n; ++i) m = std::max(m, load_f(x[i]));
  return m;
}

// sum(exp(x - m)) over a row; when `e` is given the exponentials are also stored there.
template <typename T>
FS_AVX2 inline float row_sum_exp8(const T* x, int64_t n, float m, float* e) {
  __m256 vm = _mm256_set1_ps(m), s0 = _mm256_setzero_ps(), s1 = s0;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256 e0 = exp8(_mm256_sub_ps(load8(x + i), vm));
    __m256 e1 = exp8(_mm256_sub_ps(load8(x + i + 8), vm));
    if (e) _mm256_storeu_ps(e + i, e0), _mm256_storeu_ps(e + i + 8, e1);
    s0 = _mm256_add_ps(s0, e0), s1 = _mm256_add_ps(s1, e1);
  }
  for (; i + 8 <= n; i += 8) {
    __m256 e0 = exp8(_mm256_sub_ps(load8(x + i), vm));
    if (e) _mm256_storeu_ps(e + i, e0);
    s0 = _mm256_add_ps(s0, e0);
  }
  float s = hsum8(_mm256_add_ps(s0, s1));
  for (; i < n; ++i) {
    float v = exp_f32(load_f(x[i]) - m);
    if (e) e[i] = v;
    s += v;
  }
  return s;
}

}  // namespace simd
#endif

}  // namespace flagstone::ops::cpu
