// Building blocks of the cpu kernels: branch-free f16/bf16 <-> f32 conversions that the compiler
// vectorizes, typed element access, an n-d strided iterator that collapses dims into rows, and
// the thread pool entry point.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <type_traits>
#include <vector>

#include "flagstone/base/half.h"
#include "flagstone/ops/registry.h"
#include "flagstone/runtime/thread_pool.h"
#include "shape_rules.h"

namespace flagstone::ops::cpu {

inline uint32_t as_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float as_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// The conversions below compute every case and pick one with selects rather than branches, so
// loops that widen or narrow whole rows compile to vector code (checked with -fopt-info-vec).

// IEEE half -> float, exact for every input (normals, subnormals, inf, NaN).
inline float half_to_float(uint16_t h) {
  uint32_t o = uint32_t{h & 0x7fffu} << 13;
  uint32_t exp = o & (0x7c00u << 13);
  uint32_t normal = o + ((127u - 15u) << 23);
  uint32_t inf_nan = normal + ((128u - 16u) << 23);
  uint32_t subnormal = as_bits(as_float(normal + (1u << 23)) - as_float(113u << 23));
  uint32_t r = exp == (0x7c00u << 13) ? inf_nan : (exp == 0 ? subnormal : normal);
  return as_float(r | (uint32_t{h & 0x8000u} << 16));
}

// float -> IEEE half, round to nearest even, overflow to inf, NaN stays NaN.
inline uint16_t float_to_half(float value) {
  uint32_t f = as_bits(value);
  uint32_t sign = f & 0x80000000u;
  f ^= sign;
  // >= 65536 before rounding, inf, NaN
  uint32_t big = f > (255u << 23) ? 0x7e00u : 0x7c00u;
  // subnormal or zero: the FPU rounds when the magic number's exponent aligns the mantissa
  constexpr uint32_t kDenormMagic = ((127u - 15u) + (23u - 10u) + 1u) << 23;
  uint32_t small = as_bits(as_float(f) + as_float(kDenormMagic)) - kDenormMagic;
  uint32_t mant_odd = (f >> 13) & 1u;
  uint32_t normal = (f + ((15u - 127u) << 23) + 0xfffu + mant_odd) >> 13;
  uint32_t o = f >= (143u << 23) ? big : (f < (113u << 23) ? small : normal);
  return static_cast<uint16_t>(o | (sign >> 16));
}

inline float bf16_to_float(uint16_t b) {
  return as_float(uint32_t{b} << 16);
}
inline uint16_t float_to_bf16(float value) {
  uint32_t bits = as_bits(value);
  uint32_t rounded = (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;
  uint32_t quiet_nan = (bits >> 16) | 0x40u;
  return static_cast<uint16_t>((bits & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded);
}

// exp for f32 with no libm call, so that the loops of softmax and silu vectorize: x = n ln2 + r
// with |r| <= ln2/2 (ln2 split in two for an exact product), e^r from a degree-7 polynomial,
// 2^n added to the exponent bits. Within 2 ulp of exp on [-87, 88.7]; below -87
// (where exp nears the subnormal range) it returns 0, above 88.72 inf, NaN stays NaN.
inline float exp_f32(float x) {
  constexpr float kHi = 88.7228390f, kLo = -87.0f;
  float xc = x < kLo ? kLo : (x > kHi ? kHi : x);
  // Round x*log2(e) to nearest with the 1.5*2^23 trick (no SSE4.1 rounding instruction needed).
  constexpr float kShift = 12582912.0f;
  float t = xc * 1.44269504088896341f + kShift;
  int32_t n = static_cast<int32_t>(as_bits(t) - as_bits(kShift));
  float fn = t - kShift;
  float r = xc - fn * 0.693359375f;
  r = r - fn * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  float y = p * r * r + r + 1.0f;
  // 2^n in two steps keeps n = 128 (x near kHi) representable.
  int32_t n1 = n >> 1, n2 = n - n1;
  y = y * as_float(static_cast<uint32_t>(n1 + 127) << 23) *
      as_float(static_cast<uint32_t>(n2 + 127) << 23);
  y = x < kLo ? 0.0f : y;
  y = x > kHi ? as_float(0x7f800000u) : y;
  return x != x ? x : y;
}

// Storage types of the kernels' float dtypes and their conversions to the compute type (f32,
// or f64 for f64 tensors).
inline float load_f(float v) {
  return v;
}
inline double load_f(double v) {
  return v;
}
inline float load_f(Half v) {
  return half_to_float(v.bits);
}
inline float load_f(BFloat16 v) {
  return bf16_to_float(v.bits);
}
template <typename T, typename V>
inline T store_f(V v) {
  if constexpr (std::is_same_v<T, Half>)
    return Half::from_bits(float_to_half(static_cast<float>(v)));
  else if constexpr (std::is_same_v<T, BFloat16>)
    return BFloat16::from_bits(float_to_bf16(static_cast<float>(v)));
  else
    return static_cast<T>(v);
}

// Calls f.template operator()<T>() for the storage type of a float dtype.
template <typename F>
void dispatch_float(DType dtype, F&& f) {
  switch (dtype) {
    case DType::kF32:
      f.template operator()<float>();
      return;
    case DType::kF16:
      f.template operator()<Half>();
      return;
    case DType::kBF16:
      f.template operator()<BFloat16>();
      return;
    case DType::kF64:
      f.template operator()<double>();
      return;
    default:
      throw_error(ErrorCategory::kInternal, "cpu kernel given ", dtype_name(dtype));
  }
}

// The dtypes of kernels that compute in f32: f32 itself and the half types widened to it (f64
// inputs take the reference).
inline const std::vector<DType> kHalfAndF32{DType::kF32, DType::kF16, DType::kBF16};

// dispatch_float restricted to kHalfAndF32; f64 is filtered out at compile time so kernels need
// no double instantiation.
template <typename F>
void half_or_f32(DType dtype, F&& f) {
  dispatch_float(dtype, [&]<typename T>() {
    if constexpr (!std::is_same_v<T, double>) f.template operator()<T>();
  });
}

// Float sum of a row with 8 independent partial sums (vectorizes, and keeps error low).
template <typename T, typename F>
float row_sum(const T* x, int64_t n, F f) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += f(load_f(x[i + j]));
  float s = 0;
  for (; i < n; ++i) s += f(load_f(x[i]));
  return s + ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

// Row maximum with 8 independent running maxima (vectorizes). A NaN is skipped here and
// poisons the row through exp later, as torch's softmax gives NaN rows.
template <typename T>
float row_max(const T* x, int64_t n) {
  float acc[8] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY,
                  -INFINITY, -INFINITY, -INFINITY, -INFINITY};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) {
      float v = load_f(x[i + j]);
      acc[j] = v > acc[j] ? v : acc[j];
    }
  float m = -INFINITY;
  for (; i < n; ++i) m = std::max(m, load_f(x[i]));
  for (float a : acc) m = std::max(m, a);
  return m;
}

// Up to three strided operands walked together in rows: dims that are contiguous for every
// operand are merged, so a dense or simply broadcast call becomes long unit-stride rows.
struct RowPlan {
  int64_t rows = 0;
  int64_t row_length = 0;
  std::vector<int64_t> inner_stride;          // per operand, along the row
  std::vector<std::vector<int64_t>> offsets;  // per operand, element offset of each row
};
// `strides[k]` are operand k's strides over `shape` (0 for broadcast dims).
RowPlan plan_rows(const Shape& shape, const std::vector<Shape>& strides);
// broadcast_strides (shape_rules.h) gives each operand's strides over the broadcast shape.

// parallel_for on the cpu pool with a grain sized so tiny calls stay on the calling thread.
void parallel(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& body);

// Runs body(row, begin, end) over pieces of `rows` rows of `length` elements. Long rows are cut
// into pieces so that one dense row (what a contiguous tensor becomes) still spreads over every
// thread; work under `grain` elements stays on the calling thread.
template <typename Body>
void parallel_rows(int64_t rows, int64_t length, int64_t grain, Body&& body) {
  constexpr int64_t kPiece = 1 << 14;
  int64_t pieces = length > kPiece ? (length + kPiece - 1) / kPiece : 1;
  int64_t piece = length > kPiece ? kPiece : length;
  int64_t grain_tasks = piece > 0 ? std::max<int64_t>(1, grain / piece) : 1;
  parallel(rows * pieces, grain_tasks, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      int64_t lo = (i % pieces) * piece;
      body(i / pieces, lo, std::min(length, lo + piece));
    }
  });
}

// Registers `fn` as the native cpu implementation of `op` for `dtypes`.
void add_native(Registry& r, const std::string& op, std::vector<DType> dtypes, KernelFn fn,
                bool strided = true,
                std::function<std::string(const KernelArgs&)> supports = nullptr,
                Provider provider = Provider::kNative);

// Registers `body.template operator()<T>(args)` as the native f32/f16/bf16 kernel of `op`, typed
// by the first input's dtype; dense inputs unless `strided`.
template <typename Body>
void add_native_f32_half(Registry& r, const std::string& op, Body body,
                         std::function<std::string(const KernelArgs&)> supports = nullptr,
                         bool strided = false) {
  add_native(
      r, op, kHalfAndF32,
      [body](KernelArgs& args) {
        half_or_f32(args.inputs[0].dtype(),
                    [&]<typename T>() { body.template operator()<T>(args); });
      },
      strided, std::move(supports));
}

// A tensor converted to `dtype` through the dispatched cast (no copy when it already is).
Tensor as_dtype(const Tensor& t, DType dtype);
// Element pointer of a cpu tensor.
template <typename T>
inline T* ptr(const Tensor& t) {
  return static_cast<T*>(t.host_data());
}

}  // namespace flagstone::ops::cpu
