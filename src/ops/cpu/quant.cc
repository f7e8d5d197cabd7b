// cpu native weight-only quantized linear: linear_quantized over GGUF q8_0 / q4_0 blocks and
// linear_int8 over per-row scaled int8, dequantizing each weight block in registers.
//
// Activations stay f32 (f16/bf16 inputs are widened once per call): quantizing them to int8 as
// llama.cpp does would be faster to compute but adds an error the float64 reference does not
// have. The vector rows ask for the weight 2 KiB ahead (the hardware prefetcher alone left the
// decode at a fifth of the copy bandwidth), and for one or two rows the AVX-512 ones widen 16
// values an instruction and apply a q8_0/q4_0 block's scale once to its dot. Each weight block is
// widened once and multiplied with up to four activation rows, so prefill reuses it from registers
// and decode reads every weight byte exactly once.
#include <immintrin.h>

#include <cmath>

#include "cpu/cpu_common.h"
#include "cpu/simd.h"
#include "cpu/simd512.h"
#include "internal.h"

namespace flagstone::ops::cpu {
namespace {

enum class WFormat { kInt8, kQ8_0, kQ4_0 };

constexpr int64_t kBlock = 32;
constexpr int kMaxRows = 4;  // activation rows sharing one widened weight block

// Bytes of one block of 32 weights.
template <WFormat F>
constexpr int64_t block_bytes() {
  return F == WFormat::kInt8 ? kBlock : F == WFormat::kQ8_0 ? 34 : 18;
}
// The vector rows ask for the weight this far ahead of the block they widen: on the 2-core VM of
// session 21 the hardware prefetcher alone left the q8_0 decode at 8.5 t/s (a fifth of the copy
// bandwidth), 1, 2, 4 and 8 KiB ahead ran it at 12.8, 13.7, 13.2 and 13.1.
constexpr int64_t kPrefetchAhead = 2048;

// One product y[m, n] = x[m, k] @ dequant(w)[n, k]^T, before the per-row scale and bias.
struct QuantProblem {
  WFormat format = WFormat::kQ8_0;
  const uint8_t* w = nullptr;
  int64_t row_bytes = 0;
  int64_t m = 0, n = 0, k = 0;
  const float* x = nullptr;  // dense [m, k]
};

// dots[r] = x[r0 + r] . dequant(w[j]) for r < rows.
using DotKernel = void (*)(const QuantProblem&, int64_t r0, int rows, int64_t j, float* dots);

// The 32 values of block `b` of weight row `row`, scaled (int8 rows: unscaled).
template <WFormat F>
void widen_block(const uint8_t* row, int64_t b, int64_t k, float* v) {
  if constexpr (F == WFormat::kInt8) {
    const auto* q = reinterpret_cast<const int8_t*>(row) + b * kBlock;
    int64_t len = std::min<int64_t>(kBlock, k - b * kBlock);
    for (int64_t i = 0; i < kBlock; ++i) v[i] = i < len ? static_cast<float>(q[i]) : 0.0f;
  } else if constexpr (F == WFormat::kQ8_0) {
    const uint8_t* blk = row + b * 34;
    float d = half_to_float(static_cast<uint16_t>(blk[0] | (blk[1] << 8)));
    const auto* q = reinterpret_cast<const int8_t*>(blk + 2);
    for (int i = 0; i < 32; ++i) v[i] = d * static_cast<float>(q[i]);
  } else {
    const uint8_t* blk = row + b * 18;
    float d = half_to_float(static_cast<uint16_t>(blk[0] | (blk[1] << 8)));
    for (int i = 0; i < 16; ++i) {
      v[i] = d * static_cast<float>((blk[2 + i] & 0x0f) - 8);
      v[i + 16] = d * static_cast<float>((blk[2 + i] >> 4) - 8);
    }
  }
}

// Portable kernel: the block loop vectorizes at the baseline ISA.
template <WFormat F>
void dot_generic(const QuantProblem& p, int64_t r0, int rows, int64_t j, float* dots) {
  const uint8_t* row = p.w + j * p.row_bytes;
  int64_t blocks = (p.k + kBlock - 1) / kBlock;
  float acc[kMaxRows][8] = {};
  float v[kBlock];
  for (int64_t b = 0; b < blocks; ++b) {
    widen_block<F>(row, b, p.k, v);
    int64_t len = std::min<int64_t>(kBlock, p.k - b * kBlock);
    for (int r = 0; r < rows; ++r) {
      const float* x = p.x + (r0 + r) * p.k + b * kBlock;
      if (len == kBlock) {
        for (int i = 0; i < kBlock; ++i) acc[r][i % 8] += v[i] * x[i];
      } else {
        for (int64_t i = 0; i < len; ++i) acc[r][i % 8] += v[i] * x[i];
      }
    }
  }
  for (int r = 0; r < rows; ++r)
    dots[r] = ((acc[r][0] + acc[r][1]) + (acc[r][2] + acc[r][3])) +
              ((acc[r][4] + acc[r][5]) + (acc[r][6] + acc[r][7]));
}

// An int8 row's products past its last whole block (linear_int8 takes any k), for the vector
// rows, which widen whole blocks only.
inline float int8_tail(const uint8_t* row, const float* x, int64_t from, int64_t k) {
  const auto* q = reinterpret_cast<const int8_t*>(row);
  float d = 0;
  for (int64_t i = from; i < k; ++i) d += static_cast<float>(q[i]) * x[i];
  return d;
}

#ifdef FS_CPU_X86
FS_AVX2 inline __m256 widen8(__m128i bytes) {
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes));
}

// Block b of a weight row as four vectors of 8 scaled values (int8: whole blocks only).
template <WFormat F>
FS_AVX2 inline void widen_block_avx2(const uint8_t* row, int64_t b, __m256 w[4]) {
  if constexpr (F == WFormat::kInt8) {
    const uint8_t* q = row + b * kBlock;
    for (int t = 0; t < 4; ++t)
      w[t] = widen8(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(q + 8 * t)));
  } else if constexpr (F == WFormat::kQ8_0) {
    const uint8_t* blk = row + b * 34;
    __m256 d = _mm256_set1_ps(half_to_float(static_cast<uint16_t>(blk[0] | (blk[1] << 8))));
    for (int t = 0; t < 4; ++t)
      w[t] = _mm256_mul_ps(
          d, widen8(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(blk + 2 + 8 * t))));
  } else {
    const uint8_t* blk = row + b * 18;
    __m256 d = _mm256_set1_ps(half_to_float(static_cast<uint16_t>(blk[0] | (blk[1] << 8))));
    __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2));
    __m128i mask = _mm_set1_epi8(0x0f), eight = _mm_set1_epi8(8);
    __m128i lo = _mm_sub_epi8(_mm_and_si128(packed, mask), eight);
    __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(packed, 4), mask), eight);
    w[0] = _mm256_mul_ps(d, widen8(lo));
    w[1] = _mm256_mul_ps(d, widen8(_mm_srli_si128(lo, 8)));
    w[2] = _mm256_mul_ps(d, widen8(hi));
    w[3] = _mm256_mul_ps(d, widen8(_mm_srli_si128(hi, 8)));
  }
}

// R activation rows against one weight row. Four accumulators per row for one or two rows (an
// FMA's latency needs several chains in flight), two for three or four (registers run out).
template <WFormat F, int R>
FS_AVX2 void dot_rows_avx2(const QuantProblem& p, int64_t r0, int64_t j, float* dots) {
  constexpr int A = R <= 2 ? 4 : 2;
  const uint8_t* row = p.w + j * p.row_bytes;
  int64_t full = p.k / kBlock;  // q8_0/q4_0 rows are whole blocks
  __m256 acc[R][A];
  for (int r = 0; r < R; ++r)
    for (int a = 0; a < A; ++a) acc[r][a] = _mm256_setzero_ps();
  const float* x0 = p.x + r0 * p.k;
  for (int64_t b = 0; b < full; ++b) {
    __m256 w[4];
    _mm_prefetch(reinterpret_cast<const char*>(row) + b * block_bytes<F>() + kPrefetchAhead,
                 _MM_HINT_T0);
    widen_block_avx2<F>(row, b, w);
    for (int r = 0; r < R; ++r) {
      const float* x = x0 + r * p.k + b * kBlock;
      for (int t = 0; t < 4; ++t)
        acc[r][t % A] = _mm256_fmadd_ps(w[t], _mm256_loadu_ps(x + 8 * t), acc[r][t % A]);
    }
  }
  for (int r = 0; r < R; ++r) {
    __m256 s = acc[r][0];
    for (int a = 1; a < A; ++a) s = _mm256_add_ps(s, acc[r][a]);
    float d = simd::hsum8(s);
    if constexpr (F == WFormat::kInt8) d += int8_tail(row, x0 + r * p.k, full * kBlock, p.k);
    dots[r] = d;
  }
}

template <WFormat F>
FS_AVX2 void dot_avx2(const QuantProblem& p, int64_t r0, int rows, int64_t j, float* dots) {
  switch (rows) {
    case 1:
      return dot_rows_avx2<F, 1>(p, r0, j, dots);
    case 2:
      return dot_rows_avx2<F, 2>(p, r0, j, dots);
    case 3:
      return dot_rows_avx2<F, 3>(p, r0, j, dots);
    default:
      return dot_rows_avx2<F, 4>(p, r0, j, dots);
  }
}

// 16 int8 values as f32, in the zero-masked forms (GCC 12 warns that the plain ones' undefined
// pass-through may be used).
FS_AVX512 inline __m512 widen16(__m128i bytes) {
  return _mm512_maskz_cvtepi32_ps(0xffff, _mm512_maskz_cvtepi8_epi32(0xffff, bytes));
}
FS_AVX512 inline __m128i load16(const uint8_t* p) {
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
}

// Block b of a weight row as two vectors of 16 unscaled values; returns the block's scale (1 for
// int8 rows, whose scale is per row).
template <WFormat F>
FS_AVX512 inline float widen_block_avx512(const uint8_t* row, int64_t b, __m512& w0, __m512& w1) {
  if constexpr (F == WFormat::kInt8) {
    const uint8_t* q = row + b * kBlock;
    w0 = widen16(load16(q));
    w1 = widen16(load16(q + 16));
    return 1.0f;
  } else if constexpr (F == WFormat::kQ8_0) {
    const uint8_t* blk = row + b * 34;
    w0 = widen16(load16(blk + 2));
    w1 = widen16(load16(blk + 18));
    return _cvtsh_ss(static_cast<uint16_t>(blk[0] | (blk[1] << 8)));
  } else {
    const uint8_t* blk = row + b * 18;
    const __m128i packed = load16(blk + 2);
    const __m128i mask = _mm_set1_epi8(0x0f), eight = _mm_set1_epi8(8);
    w0 = widen16(_mm_sub_epi8(_mm_and_si128(packed, mask), eight));  // elements 0-15
    w1 = widen16(_mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(packed, 4), mask), eight));  // 16-31
    return _cvtsh_ss(static_cast<uint16_t>(blk[0] | (blk[1] << 8)));
  }
}

// R activation rows against one weight row, a block (32 values) a step: the block's dot in one
// vector, then scaled into one of two accumulators per row (alternating, so the FMA latency of
// one block overlaps the next).
template <WFormat F, int R>
FS_AVX512 void dot_rows_avx512(const QuantProblem& p, int64_t r0, int64_t j, float* dots) {
  const uint8_t* row = p.w + j * p.row_bytes;
  const int64_t full = p.k / kBlock;
  __m512 acc[R][2];
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  const float* x0 = p.x + r0 * p.k;
  for (int64_t b = 0; b < full; ++b) {
    __m512 w0, w1;
    _mm_prefetch(reinterpret_cast<const char*>(row) + b * block_bytes<F>() + kPrefetchAhead,
                 _MM_HINT_T0);
    const float scale = widen_block_avx512<F>(row, b, w0, w1);
    for (int r = 0; r < R; ++r) {
      const float* x = x0 + r * p.k + b * kBlock;
      __m512& a = acc[r][b & 1];
      if constexpr (F == WFormat::kInt8) {
        a = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x), a);
        a = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x + 16), a);
      } else {
        const __m512 s =
            _mm512_fmadd_ps(w1, _mm512_loadu_ps(x + 16), _mm512_mul_ps(w0, _mm512_loadu_ps(x)));
        a = _mm512_fmadd_ps(_mm512_set1_ps(scale), s, a);
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    const __m512 v = _mm512_add_ps(acc[r][0], acc[r][1]);
    float d = simd::hsum8(_mm256_add_ps(_mm512_maskz_extractf32x8_ps(0xff, v, 0),  // (as above)
                                        _mm512_maskz_extractf32x8_ps(0xff, v, 1)));
    if constexpr (F == WFormat::kInt8) d += int8_tail(row, x0 + r * p.k, full * kBlock, p.k);
    dots[r] = d;
  }
}

// One or two rows (decode): the AVX-512 rows, 1.06x the AVX2 ones on llama-1b q8_0 decode here.
// Three or four (prefill): the AVX2 rows, whose scaled block serves every row (pp64 48-52 t/s
// against 47-49).
template <WFormat F>
FS_AVX512 void dot_avx512(const QuantProblem& p, int64_t r0, int rows, int64_t j, float* dots) {
  if (rows == 1) return dot_rows_avx512<F, 1>(p, r0, j, dots);
  if (rows == 2) return dot_rows_avx512<F, 2>(p, r0, j, dots);
  return dot_avx2<F>(p, r0, rows, j, dots);
}
#endif

template <WFormat F>
DotKernel pick_kernel() {
#ifdef FS_CPU_X86
  if (has_avx512()) return dot_avx512<F>;
  if (has_avx2()) return dot_avx2<F>;
#endif
  return dot_generic<F>;
}

DotKernel kernel_for(WFormat f) {
  switch (f) {
    case WFormat::kInt8:
      return pick_kernel<WFormat::kInt8>();
    case WFormat::kQ8_0:
      return pick_kernel<WFormat::kQ8_0>();
    default:
      return pick_kernel<WFormat::kQ4_0>();
  }
}

// f32 copy of a float tensor's values (no copy for f32); scale and bias may be any float type.
const float* f32_values(const Tensor& t, std::vector<float>& keep) {
  if (t.dtype() == DType::kF32) return ptr<const float>(t);
  keep.resize(static_cast<size_t>(t.numel()));
  dispatch_float(t.dtype(), [&]<typename T>() {
    const T* src = ptr<const T>(t);
    parallel_rows(1, t.numel(), 1 << 15, [&](int64_t, int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i)
        keep[static_cast<size_t>(i)] = static_cast<float>(load_f(src[i]));
    });
  });
  return keep.data();
}

void quant_linear(KernelArgs& args, bool int8) {
  const Tensor &x = args.inputs[0], &w = args.inputs[1];
  size_t bias_at = int8 ? 3 : 2;
  Tensor bias = args.inputs.size() > bias_at ? args.inputs[bias_at] : Tensor();
  Tensor& out = args.outputs[0];
  QuantProblem p;
  p.format = int8 ? WFormat::kInt8 : (w.dtype() == DType::kQ8_0 ? WFormat::kQ8_0 : WFormat::kQ4_0);
  p.n = w.size(0), p.k = w.size(1), p.m = p.n ? out.numel() / p.n : 0;
  p.row_bytes = static_cast<int64_t>(dtype_bytes(w.dtype(), static_cast<size_t>(p.k)));
  p.w = static_cast<const uint8_t*>(w.host_data());
  if (p.m == 0 || p.n == 0) return;
  std::vector<float> x_keep, scale_keep, bias_keep, y_keep;
  p.x = f32_values(x, x_keep);
  const float* scale = int8 ? f32_values(args.inputs[2], scale_keep) : nullptr;
  const float* bv = bias.defined() ? f32_values(bias, bias_keep) : nullptr;
  float* y = ptr<float>(out);
  if (out.dtype() != DType::kF32) {
    y_keep.resize(static_cast<size_t>(p.m * p.n));
    y = y_keep.data();
  }
  DotKernel dot = kernel_for(p.format);
  // Tasks are runs of weight rows: the run (a few KiB per row) stays in cache while every
  // group of activation rows passes over it, so the weight comes from memory once per call.
  constexpr int64_t kRun = 16;
  int64_t runs = (p.n + kRun - 1) / kRun;
  parallel(runs, 1, [&](int64_t begin, int64_t end) {
    float dots[kMaxRows];
    for (int64_t j0 = begin * kRun; j0 < std::min(p.n, end * kRun); j0 += kRun) {
      int64_t j1 = std::min(p.n, j0 + kRun);
      for (int64_t r0 = 0; r0 < p.m; r0 += kMaxRows) {
        int rows = static_cast<int>(std::min<int64_t>(kMaxRows, p.m - r0));
        for (int64_t j = j0; j < j1; ++j) {
          dot(p, r0, rows, j, dots);
          for (int r = 0; r < rows; ++r) {
            float v = dots[r];
            if (scale) v *= scale[j];
            if (bv) v += bv[j];
            y[(r0 + r) * p.n + j] = v;
          }
        }
      }
    }
  });
  if (out.dtype() != DType::kF32) {
    half_or_f32(out.dtype(), [&]<typename T>() {
      T* o = ptr<T>(out);
      for (int64_t i = 0; i < p.m * p.n; ++i) o[i] = store_f<T>(y[i]);
    });
  }
}

std::string quant_supports(const KernelArgs& args) {
  if (!args.inputs[1].is_contiguous()) return "a strided quantized weight";
  return "";
}

}  // namespace

void register_cpu_quant(Registry& r) {
  add_native(
      r, "linear_int8", kHalfAndF32, [](KernelArgs& args) { quant_linear(args, true); }, false,
      quant_supports);
  add_native(
      r, "linear_quantized", kHalfAndF32, [](KernelArgs& args) { quant_linear(args, false); },
      false, quant_supports);
}

}  // namespace flagstone::ops::cpu
