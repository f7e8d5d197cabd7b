// AVX-512 (F, BW, VL, DQ) building blocks for the cpu kernels' widest row loops: 32 elements a
// step as two 16-lane f32 vectors, the exponentials of the 16-bit rows, and reductions.
//
// The same contract as simd.h's 16-element step, one size up: f32 and f16 keep element order,
// while a bf16 step comes as its even elements in `a` and its odd ones in `b` (a shift and a mask
// of one 64-byte load) and store32 puts them back. A scratch row written from bf16 lanes is in
// that order, so the pass reading it back must use the same 32-element blocks. Functions here
// carry FS_AVX512 and are called only when has_avx512(); they may call simd.h's AVX2 helpers.
#pragma once

#include "cpu/simd.h"

#ifdef FS_CPU_X86
#define FS_AVX512 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq")))

namespace flagstone::ops::cpu::simd {

template <typename T>
FS_AVX512 inline void load32(const T* p, __m512& a, __m512& b) {
  if constexpr (std::is_same_v<T, float>) {
    a = _mm512_loadu_ps(p), b = _mm512_loadu_ps(p + 16);
  } else if constexpr (std::is_same_v<T, Half>) {
    a = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    b = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 16)));
  } else {
    __m512i x = _mm512_loadu_si512(p);
    a = _mm512_castsi512_ps(_mm512_slli_epi32(x, 16));
    b = _mm512_castsi512_ps(_mm512_and_si512(x, _mm512_set1_epi32(static_cast<int>(0xffff0000u))));
  }
}

// f32 bits rounded to nearest even at bf16 precision (the bf16 is the high half), NaN lanes made
// quiet NaNs when `MayBeNaN` (rounding could carry a payload into infinity), as pack16 does.
template <bool MayBeNaN>
FS_AVX512 inline __m512i bf16_rounded16(__m512 v) {
  __m512i bits = _mm512_castps_si512(v);
  __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_add_epi32(_mm512_add_epi32(bits, _mm512_set1_epi32(0x7fff)), lsb);
  if constexpr (MayBeNaN) {
    __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    if (__builtin_expect(nan != 0, 0))
      r = _mm512_mask_or_epi32(r, nan, bits, _mm512_set1_epi32(0x00400000));
  }
  return r;
}

// The 64 bytes of 32 elements of a 16-bit T (the inverse of load32).
template <typename T, bool MayBeNaN = true>
FS_AVX512 inline __m512i pack32(__m512 a, __m512 b) {
  if constexpr (std::is_same_v<T, Half>) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtps_ph(a, _MM_FROUND_TO_NEAREST_INT)),
                              _mm512_cvtps_ph(b, _MM_FROUND_TO_NEAREST_INT), 1);
  } else {
    // Even elements from a's high halves, odd ones from b's.
    return _mm512_mask_blend_epi16(0xaaaaaaaau, _mm512_srli_epi32(bf16_rounded16<MayBeNaN>(a), 16),
                                   bf16_rounded16<MayBeNaN>(b));
  }
}

// store32, with non-temporal stores when `Stream` (p 64-byte aligned then).
template <bool Stream, typename T, bool MayBeNaN = true>
FS_AVX512 inline void put32(T* p, __m512 a, __m512 b) {
  if constexpr (std::is_same_v<T, float>) {
    if constexpr (Stream)
      _mm512_stream_ps(p, a), _mm512_stream_ps(p + 16, b);
    else
      _mm512_storeu_ps(p, a), _mm512_storeu_ps(p + 16, b);
  } else if constexpr (Stream) {
    _mm512_stream_si512(reinterpret_cast<__m512i*>(p), pack32<T, MayBeNaN>(a, b));
  } else {
    _mm512_storeu_si512(p, pack32<T, MayBeNaN>(a, b));
  }
}

// Elements of p before the first 64-byte aligned one (n when none is).
template <typename T>
inline int64_t aligned_head64(const T* p, int64_t n) {
  auto a = reinterpret_cast<uintptr_t>(p);
  if (a % sizeof(T)) return n;
  return std::min<int64_t>(n, static_cast<int64_t>(((64 - a % 64) % 64) / sizeof(T)));
}

// The polynomials of simd.h's exp_poly3 (bf16) and exp_poly4 (f16) for e^r, |r| <= ln2/2.
template <int Degree>
FS_AVX512 inline __m512 exp_poly16(__m512 r) {
  static_assert(Degree == 3 || Degree == 4);
  __m512 p;
  if constexpr (Degree == 4) {
    p = _mm512_set1_ps(4.1458606119e-2f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6790907204e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0004358686e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(9.9996340486e-1f));
    return _mm512_fmadd_ps(p, r, _mm512_set1_ps(9.9999926144e-1f));
  } else {
    p = _mm512_set1_ps(1.6566842794e-1f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0496333838e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0001641512e+0f));
    return _mm512_fmadd_ps(p, r, _mm512_set1_ps(9.9992805719e-1f));
  }
}

// exp_f32's degree-7 polynomial (simd.h's exp8_reduced) on 16 lanes.
FS_AVX512 inline __m512 exp16_reduced(__m512 r) {
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  return _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
}

// simd.h's exp8_pow2 on 16 lanes: exp(x - k ln2) given c = 1.5 * 2^23 - k.
template <int Degree>
FS_AVX512 inline __m512 exp16_pow2(__m512 x, __m512 c) {
  __m512 t = _mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), c);
  __m512 fn = _mm512_sub_ps(t, c);
  __m512 r = _mm512_fnmadd_ps(fn, _mm512_set1_ps(0.693147180559945f), x);
  return _mm512_castsi512_ps(_mm512_add_epi32(_mm512_castps_si512(exp_poly16<Degree>(r)),
                                              _mm512_slli_epi32(_mm512_castps_si512(t), 23)));
}

}  // namespace flagstone::ops::cpu::simd
#endif
