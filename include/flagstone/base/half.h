// 16-bit float types (IEEE binary16 and bfloat16) stored as raw bits, with conversions to and
// from float that round to nearest even and keep NaN, infinities, signed zeros and subnormals.
#pragma once

#include <cstdint>
#include <cstring>

#include "flagstone/base/dtype.h"

namespace flagstone {

inline uint32_t float_bits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  return bits;
}

inline float bits_to_float(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

// float -> bfloat16 bits, round to nearest even; NaN stays NaN (quiet bit forced on).
inline uint16_t float_to_bf16_bits(float value) {
  uint32_t bits = float_bits(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

inline float bf16_bits_to_float(uint16_t bits) { return bits_to_float(uint32_t{bits} << 16); }

// float -> IEEE half bits, round to nearest even, overflow to infinity, subnormals kept.
uint16_t float_to_f16_bits(float value);
float f16_bits_to_float(uint16_t bits);

struct Half {
  uint16_t bits = 0;
  Half() = default;
  explicit Half(float value) : bits(float_to_f16_bits(value)) {}
  static Half from_bits(uint16_t raw) {
    Half h;
    h.bits = raw;
    return h;
  }
  operator float() const { return f16_bits_to_float(bits); }
};

struct BFloat16 {
  uint16_t bits = 0;
  BFloat16() = default;
  explicit BFloat16(float value) : bits(float_to_bf16_bits(value)) {}
  static BFloat16 from_bits(uint16_t raw) {
    BFloat16 h;
    h.bits = raw;
    return h;
  }
  operator float() const { return bf16_bits_to_float(bits); }
};

template <> struct DTypeOf<double> { static constexpr DType value = DType::kF64; };
template <> struct DTypeOf<float> { static constexpr DType value = DType::kF32; };
template <> struct DTypeOf<Half> { static constexpr DType value = DType::kF16; };
template <> struct DTypeOf<BFloat16> { static constexpr DType value = DType::kBF16; };
template <> struct DTypeOf<int64_t> { static constexpr DType value = DType::kI64; };
template <> struct DTypeOf<int32_t> { static constexpr DType value = DType::kI32; };
template <> struct DTypeOf<int16_t> { static constexpr DType value = DType::kI16; };
template <> struct DTypeOf<int8_t> { static constexpr DType value = DType::kI8; };
template <> struct DTypeOf<uint8_t> { static constexpr DType value = DType::kU8; };
template <> struct DTypeOf<bool> { static constexpr DType value = DType::kBool; };

// Reads element `index` of a plain-typed buffer as double / writes a double into it, converting
// with the rules above (integers truncate toward zero and wrap as a static_cast would).
double load_as_double(const void* data, DType dtype, int64_t index);
void store_from_double(void* data, DType dtype, int64_t index, double value);

}  // namespace flagstone
