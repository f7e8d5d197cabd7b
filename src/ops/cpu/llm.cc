// cpu native large-model kernels: silu_and_mul / gelu_and_mul, rotary embedding (neox and
// gpt-j, partial rotary), cross_entropy and embedding lookup. Rows are contiguous (dispatch
// densifies views).
#include <cmath>

#include "cpu/cpu_common.h"
#include "cpu/simd.h"
#include "cpu/simd512.h"
#include "cpu/softmax_rows.h"
#include "internal.h"

namespace flagstone::ops {
namespace cpu {
namespace {

#ifdef FS_CPU_X86
// AVX2/FMA rows, picked at run time by has_avx2(); tails past the last full step run the scalar
// formula of the portable loops.

// silu(g) = g / (1 + exp(-g)) on 8 lanes for g >= -87 (lower g, -inf included, goes through
// silu_mul_slow: exp(-g) would overflow the exponent add): exp(-g) from the polynomial of
// exp8_coarse (f16), exp_poly3 (bf16) or exp8 (f32), and the division as a reciprocal
// estimate, refined by one Newton step for f32 (2^-22) and taken as is for f16/bf16 (within
// 1.5 * 2^-12, a third of an f16 ulp): a division costs several times the rest of the lane's work
// on this hardware. g > 87 is clamped inside the exp only, so silu(g) = g there; NaN stays NaN
// through the final product with g.
template <typename T>
FS_AVX2 inline __m256 silu8(__m256 g) {
  const __m256 shift = _mm256_set1_ps(12582912.0f);
  __m256 gc = _mm256_min_ps(g, _mm256_set1_ps(87.0f));
  __m256 t = _mm256_fnmadd_ps(gc, _mm256_set1_ps(1.44269504088896341f), shift);
  __m256 fn = _mm256_sub_ps(t, shift);  // round(-g / ln2)
  // r = -g - fn ln2: ln2 in two parts at f32 precision (as exp8), in one for 16-bit rows (as
  // exp8_coarse); e^r from the polynomial of each.
  const __m256 ng = _mm256_xor_ps(gc, _mm256_set1_ps(-0.0f));
  __m256 e;
  if constexpr (std::is_same_v<T, float>) {
    __m256 r = _mm256_fnmadd_ps(fn, _mm256_set1_ps(0.693359375f), ng);
    e = simd::exp8_reduced(_mm256_fnmadd_ps(fn, _mm256_set1_ps(-2.12194440e-4f), r));
  } else {
    __m256 r = _mm256_fnmadd_ps(fn, _mm256_set1_ps(0.693147180559945f), ng);
    e = std::is_same_v<T, Half> ? simd::exp_poly4(r) : simd::exp_poly3(r);
  }
  // n = round(-g / ln2) is in [-126, 126] here: t's low bits, shifted into the exponent field.
  e = _mm256_castsi256_ps(
      _mm256_add_epi32(_mm256_castps_si256(e), _mm256_slli_epi32(_mm256_castps_si256(t), 23)));
  __m256 den = _mm256_add_ps(e, _mm256_set1_ps(1.0f));
  __m256 inv = _mm256_rcp_ps(den);
  if constexpr (std::is_same_v<T, float>)
    inv = _mm256_mul_ps(inv, _mm256_fnmadd_ps(den, inv, _mm256_set1_ps(2.0f)));
  return _mm256_mul_ps(g, inv);
}

// The portable formula on elements [b, e) (torch's results for g below -87: -0 or tiny, NaN
// for -inf).
template <typename T>
inline void silu_mul_slow(const T* g, const T* u, T* o, int64_t b, int64_t e) {
  for (int64_t i = b; i < e; ++i) {
    float gv = load_f(g[i]);
    o[i] = store_f<T>(gv / (1.0f + exp_f32(-gv)) * load_f(u[i]));
  }
}

// `Stream`: non-temporal stores from the output's first 32-byte boundary.
template <bool Stream, typename T>
FS_AVX2 void silu_mul_row_avx2(const T* g, const T* u, T* o, int64_t d) {
  __m256 g0, g1, u0, u1;
  const __m256 lo = _mm256_set1_ps(-87.0f);
  int64_t i = Stream ? simd::aligned_head(o, d) : 0;
  silu_mul_slow(g, u, o, 0, i);
  for (; i + 16 <= d; i += 16) {
    simd::load16(g + i, g0, g1);
    // One test for both vectors (min_ps gives its second operand for NaN, so a lane below -87
    // is caught in either; a NaN lane is fine on the fast path).
    if (__builtin_expect(
            _mm256_movemask_ps(_mm256_cmp_ps(_mm256_min_ps(g0, g1), lo, _CMP_NGE_UQ)) != 0, 0)) {
      silu_mul_slow(g, u, o, i, i + 16);
      continue;
    }
    simd::load16(u + i, u0, u1);
    simd::put16<Stream>(o + i, _mm256_mul_ps(silu8<T>(g0), u0), _mm256_mul_ps(silu8<T>(g1), u1));
  }
  silu_mul_slow(g, u, o, i, d);
  if constexpr (Stream) _mm_sfence();  // streamed lines visible before the pool reports done
}

// silu8 on 16 lanes with AVX-512: the same range reduction and polynomials, the reciprocal from
// rcp14 (relative error 2^-14, refined by one Newton step for f32).
template <typename T>
FS_AVX512 inline __m512 silu16(__m512 g) {
  const __m512 shift = _mm512_set1_ps(12582912.0f);
  __m512 gc = _mm512_min_ps(g, _mm512_set1_ps(87.0f));
  __m512 t = _mm512_fnmadd_ps(gc, _mm512_set1_ps(1.44269504088896341f), shift);
  __m512 fn = _mm512_sub_ps(t, shift);
  const __m512 ng = _mm512_castsi512_ps(
      _mm512_xor_si512(_mm512_castps_si512(gc), _mm512_set1_epi32(static_cast<int>(0x80000000u))));
  __m512 e;
  if constexpr (std::is_same_v<T, float>) {
    __m512 r = _mm512_fnmadd_ps(fn, _mm512_set1_ps(0.693359375f), ng);
    e = simd::exp16_reduced(_mm512_fnmadd_ps(fn, _mm512_set1_ps(-2.12194440e-4f), r));
  } else {
    __m512 r = _mm512_fnmadd_ps(fn, _mm512_set1_ps(0.693147180559945f), ng);
    e = simd::exp_poly16<(std::is_same_v<T, Half> ? 4 : 3)>(r);
  }
  e = _mm512_castsi512_ps(
      _mm512_add_epi32(_mm512_castps_si512(e), _mm512_slli_epi32(_mm512_castps_si512(t), 23)));
  __m512 den = _mm512_add_ps(e, _mm512_set1_ps(1.0f));
  __m512 inv = _mm512_rcp14_ps(den);
  if constexpr (std::is_same_v<T, float>)
    inv = _mm512_mul_ps(inv, _mm512_fnmadd_ps(den, inv, _mm512_set1_ps(2.0f)));
  return _mm512_mul_ps(g, inv);
}

// silu_mul_row_avx2 with 32-element steps; the AVX2 row takes the rest of the row.
template <bool Stream, typename T>
FS_AVX512 void silu_mul_row_512(const T* g, const T* u, T* o, int64_t d) {
  __m512 g0, g1, u0, u1;
  const __m512 lo = _mm512_set1_ps(-87.0f);
  int64_t i = Stream ? simd::aligned_head64(o, d) : 0;
  silu_mul_slow(g, u, o, 0, i);
  for (; i + 32 <= d; i += 32) {
    simd::load32(g + i, g0, g1);
    if (__builtin_expect(_mm512_cmp_ps_mask(_mm512_min_ps(g0, g1), lo, _CMP_NGE_UQ) != 0, 0)) {
      silu_mul_slow(g, u, o, i, i + 32);
      continue;
    }
    simd::load32(u + i, u0, u1);
    simd::put32<Stream>(o + i, _mm512_mul_ps(silu16<T>(g0), u0), _mm512_mul_ps(silu16<T>(g1), u1));
  }
  silu_mul_row_avx2<Stream>(g + i, u + i, o + i, d - i);  // its sfence covers these stores too
}

// neox rotation of one head: the first and second halves of the rotated dims pair up. 16 lanes
// a step where the table has the dtype of x (load16's lane order is per dtype), else 8.
// `Stream`: those 16-lane stores are non-temporal (o and o + half 32-byte aligned).
template <bool Stream, typename T, typename C>
FS_AVX2 void rotary_neox_avx2(const T* x, T* o, const C* c, const C* s, int64_t half) {
  int64_t i = 0;
  if constexpr (std::is_same_v<T, C>) {
    __m256 x1a, x1b, x2a, x2b, ca, cb, sa, sb;
    for (; i + 16 <= half; i += 16) {
      simd::load16(x + i, x1a, x1b), simd::load16(x + i + half, x2a, x2b);
      simd::load16(c + i, ca, cb), simd::load16(s + i, sa, sb);
      simd::put16<Stream>(o + i, _mm256_fmsub_ps(x1a, ca, _mm256_mul_ps(x2a, sa)),
                          _mm256_fmsub_ps(x1b, cb, _mm256_mul_ps(x2b, sb)));
      simd::put16<Stream>(o + i + half, _mm256_fmadd_ps(x2a, ca, _mm256_mul_ps(x1a, sa)),
                          _mm256_fmadd_ps(x2b, cb, _mm256_mul_ps(x1b, sb)));
    }
  }
  for (; i + 8 <= half; i += 8) {
    __m256 x1 = simd::load8(x + i), x2 = simd::load8(x + i + half);
    __m256 cv = simd::load8(c + i), sv = simd::load8(s + i);
    simd::store8(o + i, _mm256_sub_ps(_mm256_mul_ps(x1, cv), _mm256_mul_ps(x2, sv)));
    simd::store8(o + i + half, _mm256_add_ps(_mm256_mul_ps(x2, cv), _mm256_mul_ps(x1, sv)));
  }
  for (; i < half; ++i) {
    float x1 = load_f(x[i]), x2 = load_f(x[i + half]);
    float cv = load_f(c[i]), sv = load_f(s[i]);
    o[i] = store_f<T>(x1 * cv - x2 * sv);
    o[i + half] = store_f<T>(x2 * cv + x1 * sv);
  }
}

// log(sum(exp(x))) of a 16-bit row in one read over shifts of whole ln2 (softmax_rows.h), with
// sum(x) in `total` when asked; false when the row must take row_stats16 (values beyond the
// shifts' range, or nothing finite). f16 rows too take the degree-3 exponential (kPow2Degree
// says why). The loads run 2 KiB behind a software prefetch: the hardware prefetcher alone left
// the loop waiting on memory between its bursts.
template <typename T>
FS_AVX2 bool ce_row_pow2(const T* x, int64_t n, bool with_total, double& lse, float& total) {
  simd::Pow2Sum s;
  total = 0;
  for (int64_t b = 0; b < n; b += kStatChunk<T>) {
    int64_t len = std::min(kStatChunk<T>, n - b);
    if (with_total) total += simd::chunk_sum16(x + b, len);
    if (!simd::pow2_chunk<T, 3>(s, x + b, len, nullptr, 0, nullptr, 2048)) return false;
  }
  if (s.k == -INFINITY) return false;
  lse = s.k * simd::kLn2 + std::log(static_cast<double>(s.sum));
  return true;
}

#endif

// `is_silu` lets the AVX2 row replace act (silu) with its vector form.
template <typename T, typename Act>
void act_and_mul(const Tensor& x, const Tensor& out, Act act, bool is_silu) {
  (void)is_silu;  // only the x86 build has the vector silu
  int64_t d = out.shape().back(), rows = d == 0 ? 0 : out.numel() / d;
  const T* px = ptr<const T>(x);
  T* po = ptr<T>(out);
#ifdef FS_CPU_X86
  if (is_silu && has_avx2()) {
    const bool stream = stream_output(x.nbytes() + out.nbytes());
    parallel_rows(rows, d, 8192, [&](int64_t r, int64_t b, int64_t e) {
      const T* g = px + r * 2 * d;
      if (has_avx512())
        stream ? silu_mul_row_512<true>(g + b, g + d + b, po + r * d + b, e - b)
               : silu_mul_row_512<false>(g + b, g + d + b, po + r * d + b, e - b);
      else if (stream)
        silu_mul_row_avx2<true>(g + b, g + d + b, po + r * d + b, e - b);
      else
        silu_mul_row_avx2<false>(g + b, g + d + b, po + r * d + b, e - b);
    });
    return;
  }
#endif
  parallel(rows, std::max<int64_t>(1, 8192 / std::max<int64_t>(d, 1)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const T* g = px + r * 2 * d;
      const T* u = g + d;
      T* o = po + r * d;
      for (int64_t i = 0; i < d; ++i) o[i] = store_f<T>(act(load_f(g[i])) * load_f(u[i]));
    }
  });
}

// exp_f32 rather than std::exp so the gate loop vectorizes; large negative x gives -0 as
// x / inf, as torch does.
float silu(float x) {
  return x / (1.0f + exp_f32(-x));
}
float gelu_erf(float x) {
  return 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752f));
}
float gelu_tanh(float x) {
  return 0.5f * x * (1.0f + std::tanh(0.7978845608028654f * (x + 0.044715f * x * x * x)));
}

int64_t load_index(const Tensor& t, int64_t i) {
  return t.dtype() == DType::kI64 ? ptr<const int64_t>(t)[i] : ptr<const int32_t>(t)[i];
}

template <typename T, typename C>
void rotary(const Tensor& x, const Tensor& positions, const Tensor& cos, const Tensor& sin,
            const Tensor& out, bool neox) {
  int64_t heads = x.size(x.dim() - 2), hd = x.shape().back();
  int64_t tokens = positions.numel(), half = cos.size(1), max_pos = cos.size(0);
  const T* px = ptr<const T>(x);
  T* po = ptr<T>(out);
  const C* pc = ptr<const C>(cos);
  const C* ps = ptr<const C>(sin);
  for (int64_t t = 0; t < tokens; ++t) {
    int64_t p = load_index(positions, t);
    FS_CHECK(p >= 0 && p < max_pos, kInvalidArgument, "op 'rotary_embedding': position ", p,
             " of token ", t, " is outside the cos/sin table of ", max_pos, " rows");
  }
  [[maybe_unused]] bool avx2 = has_avx2();
  // Streamed 16-lane stores need each head's halves 32-byte aligned: a row of 16 lanes is 32 or
  // 64 bytes, so aligned heads (hd and half multiples of 16) from an aligned base.
  [[maybe_unused]] bool stream = stream_output(2 * out.nbytes()) && std::is_same_v<T, C> &&
                                 hd % 16 == 0 && half % 16 == 0 &&
                                 reinterpret_cast<uintptr_t>(po) % 32 == 0;
  parallel(tokens, 16, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      int64_t p = load_index(positions, t);
      const C* c = pc + p * half;
      const C* s = ps + p * half;
      for (int64_t h = 0; h < heads; ++h) {
        const T* xi = px + (t * heads + h) * hd;
        T* o = po + (t * heads + h) * hd;
#ifdef FS_CPU_X86
        if (neox && avx2 && stream) {
          rotary_neox_avx2<true>(xi, o, c, s, half);
        } else if (neox && avx2) {
          rotary_neox_avx2<false>(xi, o, c, s, half);
        } else
#endif
            if (neox) {
          for (int64_t i = 0; i < half; ++i) {
            float x1 = load_f(xi[i]), x2 = load_f(xi[i + half]);
            float cv = load_f(c[i]), sv = load_f(s[i]);
            o[i] = store_f<T>(x1 * cv - x2 * sv);
            o[i + half] = store_f<T>(x2 * cv + x1 * sv);
          }
        } else {
          for (int64_t i = 0; i < half; ++i) {
            float x1 = load_f(xi[2 * i]), x2 = load_f(xi[2 * i + 1]);
            float cv = load_f(c[i]), sv = load_f(s[i]);
            o[2 * i] = store_f<T>(x1 * cv - x2 * sv);
            o[2 * i + 1] = store_f<T>(x2 * cv + x1 * sv);
          }
        }
        for (int64_t i = 2 * half; i < hd; ++i) o[i] = xi[i];
      }
    }
#ifdef FS_CPU_X86
    if (stream) _mm_sfence();  // streamed lines visible before the pool reports done
#endif
  });
}

// torch's cross_entropy with class-index targets: per row lse - x[target], blended with the
// mean log-probability under label smoothing; ignored rows count neither loss nor denominator.
// Row statistics in f32 (vectorized exp), the reduction over rows in double.
template <typename T>
void cross_entropy(KernelArgs& args) {
  const Tensor &x = args.inputs[0], &target = args.inputs[1];
  int64_t n = x.dim() == 2 ? x.size(0) : 1, c = x.shape().back();
  int64_t ignore = args.attrs.get_int("ignore_index", -100);
  double ls = args.attrs.get_double("label_smoothing", 0);
  std::string reduction = args.attrs.get_string("reduction", "mean");
  for (int64_t i = 0; i < n; ++i) {
    int64_t t = load_index(target, i);
    FS_CHECK(t == ignore || (t >= 0 && t < c), kInvalidArgument, "op 'cross_entropy': target ", t,
             " of sample ", i, " is outside [0, ", c, ")");
  }
  const T* px = ptr<const T>(x);
  std::vector<double> losses(static_cast<size_t>(n), 0.0);
  [[maybe_unused]] bool avx2 = has_avx2();
  parallel(n, std::max<int64_t>(1, 16384 / std::max<int64_t>(c, 1)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      int64_t t = load_index(target, r);
      if (t == ignore) continue;
      const T* xr = px + r * c;
      // One sweep over the row gives max, sum(exp) and, under label smoothing, sum(x).
      RowStats st;
      double lse = 0;
#ifdef FS_CPU_X86
      if (avx2 && !std::is_same_v<T, float> && ce_row_pow2(xr, c, ls > 0, lse, st.total)) {
      } else if (avx2) {
        st = simd::row_stats16(xr, c, ls > 0, 2048);
        lse = st.max + std::log(static_cast<double>(st.sum));
      } else
#endif
      {
        st = row_stats(xr, c, ls > 0);
        lse = st.max + std::log(static_cast<double>(st.sum));
      }
      double loss = lse - load_f(xr[t]);
      if (ls > 0) {
        double sum_logp = static_cast<double>(st.total) - static_cast<double>(c) * lse;
        loss = (1 - ls) * loss - ls * sum_logp / static_cast<double>(c);
      }
      losses[static_cast<size_t>(r)] = loss;
    }
  });
  T* po = ptr<T>(args.outputs[0]);
  if (reduction == "none") {
    for (int64_t i = 0; i < n; ++i) po[i] = store_f<T>(losses[static_cast<size_t>(i)]);
    return;
  }
  double total = 0, count = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (load_index(target, i) == ignore) continue;
    total += losses[static_cast<size_t>(i)];
    count += 1;
  }
  po[0] = store_f<T>(reduction == "sum" ? total : total / count);
}

void embedding(KernelArgs& args) {
  const Tensor &idx = args.inputs[0], &w = args.inputs[1];
  int64_t rows = w.size(0), n = idx.numel();
  size_t row_bytes = dtype_size(w.dtype()) * static_cast<size_t>(w.size(1));
  for (int64_t i = 0; i < n; ++i) {
    int64_t k = load_index(idx, i);
    FS_CHECK(k >= 0 && k < rows, kInvalidArgument, "op 'embedding': index ", k, " at position ", i,
             " is out of range for a table of ", rows, " rows");
  }
  const auto* src = static_cast<const std::byte*>(w.host_data());
  auto* dst = static_cast<std::byte*>(args.outputs[0].host_data());
  parallel(n, 64, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      std::memcpy(dst + i * row_bytes, src + load_index(idx, i) * row_bytes, row_bytes);
  });
}

}  // namespace
}  // namespace cpu

void register_cpu_llm(Registry& r) {
  using namespace cpu;
  add_native(
      r, "silu_and_mul", kHalfAndF32,
      [](KernelArgs& args) {
        half_or_f32(args.inputs[0].dtype(), [&]<typename T>() {
          act_and_mul<T>(
              args.inputs[0], args.outputs[0], [](float v) { return silu(v); }, true);
        });
      },
      false);
  add_native(
      r, "gelu_and_mul", kHalfAndF32,
      [](KernelArgs& args) {
        bool tanh_approx = args.attrs.get_string("approximate", "none") == "tanh";
        half_or_f32(args.inputs[0].dtype(), [&]<typename T>() {
          act_and_mul<T>(args.inputs[0], args.outputs[0], tanh_approx ? gelu_tanh : gelu_erf,
                         false);
        });
      },
      false);
  add_native(
      r, "rotary_embedding", kHalfAndF32,
      [](KernelArgs& args) {
        bool neox = args.attrs.get_string("style", "neox") == "neox";
        half_or_f32(args.inputs[0].dtype(), [&]<typename T>() {
          half_or_f32(args.inputs[2].dtype(), [&]<typename C>() {
            rotary<T, C>(args.inputs[0], args.inputs[1], args.inputs[2], args.inputs[3],
                         args.outputs[0], neox);
          });
        });
      },
      false,
      [](const KernelArgs& args) {
        return args.inputs[2].dtype() == DType::kF64
                   ? std::string("f64 tables run in the reference")
                   : std::string();
      });
  add_native_f32_half(r, "cross_entropy",
                      []<typename T>(KernelArgs& args) { cross_entropy<T>(args); });
  std::vector<DType> all{DType::kF32, DType::kF16, DType::kBF16, DType::kF64, DType::kI64,
                         DType::kI32, DType::kI16, DType::kI8,   DType::kU8,  DType::kBool};
  add_native(r, "embedding", all, embedding, false);
}

}  // namespace flagstone::ops
