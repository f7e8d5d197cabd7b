// IEEE binary16 conversions (round to nearest even) and dtype-generic element access.
#include "flagstone/base/half.h"

#include <cmath>
#include <limits>

#include "flagstone/base/error.h"

namespace flagstone {

uint16_t float_to_f16_bits(float value) {
  uint32_t bits = float_bits(value);
  uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude > 0x7f800000u) {  // NaN: keep the top payload bits, force quiet
    return static_cast<uint16_t>(sign | 0x7e00u | ((magnitude >> 13) & 0x3ffu));
  }
  if (magnitude >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow: inf
  if (magnitude < 0x38800000u) {
    // Result is subnormal or zero in half: scale to units of 2^-24 and round to nearest even.
    if (magnitude < 0x33000000u) return sign;  // below half of the smallest subnormal
    uint32_t exponent = magnitude >> 23;
    uint32_t mantissa = (magnitude & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - exponent;  // 113 - exponent + 13
    uint32_t half_mantissa = mantissa >> shift;
    uint32_t remainder = mantissa & ((1u << shift) - 1);
    uint32_t halfway = 1u << (shift - 1);
    if (remainder > halfway || (remainder == halfway && (half_mantissa & 1u))) ++half_mantissa;
    return static_cast<uint16_t>(sign | half_mantissa);
  }
  // Normal: rebias exponent (127 -> 15) and round the 13 dropped mantissa bits to even.
  uint32_t rebased = magnitude - (112u << 23);
  uint32_t rounded = rebased + 0xfffu + ((rebased >> 13) & 1u);
  return static_cast<uint16_t>(sign | (rounded >> 13));
}

float f16_bits_to_float(uint16_t bits) {
  uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  uint32_t exponent = (bits >> 10) & 0x1fu;
  uint32_t mantissa = bits & 0x3ffu;
  if (exponent == 0x1f) return bits_to_float(sign | 0x7f800000u | (mantissa << 13));
  if (exponent == 0) {
    if (mantissa == 0) return bits_to_float(sign);
    float value = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -value : value;
  }
  return bits_to_float(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

namespace {

// Saturating conversion: NaN gives 0, out-of-range values clamp, so no conversion is UB.
template <typename T>
T saturate(double value) {
  if (std::isnan(value)) return T{0};
  constexpr double lo = static_cast<double>(std::numeric_limits<T>::lowest());
  constexpr double hi = static_cast<double>(std::numeric_limits<T>::max());
  if (value <= lo) return std::numeric_limits<T>::lowest();
  if (value >= hi) return std::numeric_limits<T>::max();
  return static_cast<T>(value);
}

template <typename T>
T read(const void* data, int64_t index) {
  T value;
  std::memcpy(&value, static_cast<const char*>(data) + index * static_cast<int64_t>(sizeof(T)),
              sizeof(T));
  return value;
}

template <typename T>
void write(void* data, int64_t index, T value) {
  std::memcpy(static_cast<char*>(data) + index * static_cast<int64_t>(sizeof(T)), &value,
              sizeof(T));
}

}  // namespace

double load_as_double(const void* data, DType dtype, int64_t index) {
  switch (dtype) {
    case DType::kF64:
      return read<double>(data, index);
    case DType::kF32:
      return read<float>(data, index);
    case DType::kF16:
      return f16_bits_to_float(read<uint16_t>(data, index));
    case DType::kBF16:
      return bf16_bits_to_float(read<uint16_t>(data, index));
    case DType::kI64:
      return static_cast<double>(read<int64_t>(data, index));
    case DType::kI32:
      return read<int32_t>(data, index);
    case DType::kI16:
      return read<int16_t>(data, index);
    case DType::kI8:
      return read<int8_t>(data, index);
    case DType::kU8:
      return read<uint8_t>(data, index);
    case DType::kBool:
      return read<uint8_t>(data, index) != 0 ? 1.0 : 0.0;
    default:
      break;
  }
  throw_error(ErrorCategory::kInvalidArgument, "cannot read elements of dtype ", dtype_name(dtype),
              " one at a time");
}

void store_from_double(void* data, DType dtype, int64_t index, double value) {
  switch (dtype) {
    case DType::kF64:
      return write<double>(data, index, value);
    case DType::kF32:
      return write<float>(data, index, static_cast<float>(value));
    case DType::kF16:
      return write<uint16_t>(data, index, float_to_f16_bits(static_cast<float>(value)));
    case DType::kBF16:
      return write<uint16_t>(data, index, float_to_bf16_bits(static_cast<float>(value)));
    case DType::kI64:
      return write<int64_t>(data, index, saturate<int64_t>(value));
    case DType::kI32:
      return write<int32_t>(data, index, saturate<int32_t>(value));
    case DType::kI16:
      return write<int16_t>(data, index, saturate<int16_t>(value));
    case DType::kI8:
      return write<int8_t>(data, index, saturate<int8_t>(value));
    case DType::kU8:
      return write<uint8_t>(data, index, saturate<uint8_t>(value));
    case DType::kBool:
      return write<uint8_t>(data, index, value != 0.0 ? 1 : 0);
    default:
      break;
  }
  throw_error(ErrorCategory::kInvalidArgument, "cannot write elements of dtype ", dtype_name(dtype),
              " one at a time");
}

}  // namespace flagstone
