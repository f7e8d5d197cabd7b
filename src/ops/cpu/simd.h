// AVX2/FMA/F16C building blocks for the cpu kernels' fast row loops: 8-wide loads and stores of
// f32/f16/bf16, a vector exp matching exp_f32, and horizontal reductions.
//
// The library is built for baseline x86-64, so these functions carry target attributes and the
// kernels call them only from functions with the same attributes, chosen once at run time with
// has_avx2(); other architectures compile none of it (FS_CPU_X86 is undefined there).
#pragma once

#include <cstdlib>
#include <string_view>

#include "cpu/cpu_common.h"

#if defined(__x86_64__) || defined(__i386__)
#define FS_CPU_X86 1
#include <cpuid.h>
#include <immintrin.h>
#define FS_AVX2 __attribute__((target("avx2,fma,f16c")))
#endif

namespace flagstone::ops::cpu {

// True when the running CPU has AVX2, FMA and F16C (checked once). False off x86, and when
// FLAGSTONE_CPU_ISA=baseline, which lets tests run the portable loops on an AVX2 machine.
inline bool has_avx2() {
#ifdef FS_CPU_X86
  static const bool yes = [] {
    const char* isa = std::getenv("FLAGSTONE_CPU_ISA");
    if (isa && std::string_view(isa) == "baseline") return false;
    // F16C through cpuid: clang's __builtin_cpu_supports does not know that feature name.
    unsigned a = 0, b = 0, c = 0, d = 0;
    bool f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
  }();
  return yes;
#else
  return false;
#endif
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
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  __m256 y = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
  __m256i n1 = _mm256_srai_epi32(n, 1), n2 = _mm256_sub_epi32(n, n1);
  __m256i bias = _mm256_set1_epi32(127);
  y = _mm256_mul_ps(y, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23)));
  y = _mm256_mul_ps(y, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23)));
  y = _mm256_blendv_ps(y, _mm256_setzero_ps(), _mm256_cmp_ps(x, lo, _CMP_LT_OQ));
  y = _mm256_blendv_ps(y, _mm256_set1_ps(INFINITY), _mm256_cmp_ps(x, hi, _CMP_GT_OQ));
  return _mm256_blendv_ps(y, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
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
