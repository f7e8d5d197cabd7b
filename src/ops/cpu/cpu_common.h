// Building blocks of the cpu kernels: branch-free f16/bf16 <-> f32 conversions that the compiler
// vectorizes, typed element access, an n-d strided iterator that collapses dims into rows, and
// the thread pool entry point.
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "flagstone/base/half.h"
#include "flagstone/ops/registry.h"
#include "flagstone/runtime/thread_pool.h"

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

// IEEE half -> float, exact for every input (normals, subnormals, inf, NaN).
inline float half_to_float(uint16_t h) {
  uint32_t o = uint32_t{h & 0x7fffu} << 13;
  uint32_t exp = o & (0x7c00u << 13);
  o += (127u - 15u) << 23;
  float f;
  if (exp == (0x7c00u << 13)) {
    f = as_float(o + ((128u - 16u) << 23));  // inf / NaN
  } else if (exp == 0) {
    f = as_float(o + (1u << 23)) - as_float(113u << 23);  // subnormal: renormalize
  } else {
    f = as_float(o);
  }
  return as_float(as_bits(f) | (uint32_t{h & 0x8000u} << 16));
}

// float -> IEEE half, round to nearest even, overflow to inf, NaN stays NaN.
inline uint16_t float_to_half(float value) {
  uint32_t f = as_bits(value);
  uint32_t sign = f & 0x80000000u;
  f ^= sign;
  uint32_t o;
  if (f >= (143u << 23)) {  // >= 65536 before rounding, inf, NaN
    o = f > (255u << 23) ? 0x7e00u : 0x7c00u;
  } else if (f < (113u << 23)) {  // subnormal or zero: let the FPU round
    constexpr uint32_t kDenormMagic = ((127u - 15u) + (23u - 10u) + 1u) << 23;
    o = as_bits(as_float(f) + as_float(kDenormMagic)) - kDenormMagic;
  } else {
    uint32_t mant_odd = (f >> 13) & 1u;
    f += ((15u - 127u) << 23) + 0xfffu + mant_odd;
    o = f >> 13;
  }
  return static_cast<uint16_t>(o | (sign >> 16));
}

inline float bf16_to_float(uint16_t b) {
  return as_float(uint32_t{b} << 16);
}
inline uint16_t float_to_bf16(float value) {
  uint32_t bits = as_bits(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40u);
  return static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
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
// Strides of `t` broadcast to `shape` (0 where t has size 1 or the dim is missing).
Shape broadcast_strides(const Tensor& t, const Shape& shape);

// parallel_for on the cpu pool with a grain sized so tiny calls stay on the calling thread.
void parallel(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& body);

// Registers `fn` as the native cpu implementation of `op` for `dtypes`.
void add_native(Registry& r, const std::string& op, std::vector<DType> dtypes, KernelFn fn,
                bool strided = true,
                std::function<std::string(const KernelArgs&)> supports = nullptr,
                Provider provider = Provider::kNative);

// A tensor converted to `dtype` through the dispatched cast (no copy when it already is).
Tensor as_dtype(const Tensor& t, DType dtype);
// Element pointer of a cpu tensor.
template <typename T>
inline T* ptr(const Tensor& t) {
  return static_cast<T*>(t.host_data());
}

}  // namespace flagstone::ops::cpu
