// f16/bf16 conversions checked against known bit patterns and against an independent
// reference that decodes every half with ldexp and rounds to the nearest, ties to even.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "flagstone/base/error.h"
#include "flagstone/base/half.h"

namespace flagstone {
namespace {

// Independent decode: sign * 2^(e-15) * (1 + m/1024), subnormals 2^-14 * m/1024.
double reference_f16_value(uint16_t bits) {
  int sign = bits >> 15;
  int exponent = (bits >> 10) & 0x1f;
  int mantissa = bits & 0x3ff;
  double value = exponent == 0 ? std::ldexp(mantissa / 1024.0, -14)
                               : std::ldexp(1.0 + mantissa / 1024.0, exponent - 15);
  if (exponent == 0x1f) value = mantissa ? NAN : INFINITY;
  return sign ? -value : value;
}

TEST(Half, KnownBitPatterns) {
  EXPECT_EQ(float_to_f16_bits(1.0f), 0x3C00);
  EXPECT_EQ(float_to_f16_bits(-2.0f), 0xC000);
  EXPECT_EQ(float_to_f16_bits(0.1f), 0x2E66);
  EXPECT_EQ(float_to_f16_bits(65504.0f), 0x7BFF);
  EXPECT_EQ(float_to_f16_bits(65519.0f), 0x7BFF);
  EXPECT_EQ(float_to_f16_bits(65520.0f), 0x7C00);  // rounds up to infinity
  EXPECT_EQ(float_to_f16_bits(INFINITY), 0x7C00);
  EXPECT_EQ(float_to_f16_bits(-INFINITY), 0xFC00);
  EXPECT_EQ(float_to_f16_bits(-0.0f), 0x8000);
  EXPECT_EQ(float_to_f16_bits(std::ldexp(1.0f, -24)), 0x0001);             // smallest subnormal
  EXPECT_EQ(float_to_f16_bits(std::ldexp(1.0f, -25)), 0x0000);             // tie -> even (zero)
  EXPECT_EQ(float_to_f16_bits(std::ldexp(3.0f, -25)), 0x0002);             // tie -> even (two)
  EXPECT_EQ(float_to_f16_bits(std::ldexp(1.0f, -14)), 0x0400);             // smallest normal
  EXPECT_EQ(float_to_f16_bits(1.0f + std::ldexp(1.0f, -11)), 0x3C00);      // tie -> even
  EXPECT_EQ(float_to_f16_bits(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);  // tie -> even
  uint16_t nan = float_to_f16_bits(NAN);
  EXPECT_EQ(nan & 0x7C00, 0x7C00);
  EXPECT_NE(nan & 0x03FF, 0);
  EXPECT_EQ(f16_bits_to_float(0x3C00), 1.0f);
  EXPECT_EQ(f16_bits_to_float(0x0001), std::ldexp(1.0f, -24));
  EXPECT_TRUE(std::isinf(f16_bits_to_float(0x7C00)));
  EXPECT_TRUE(std::isnan(f16_bits_to_float(0x7E00)));
  EXPECT_TRUE(std::signbit(f16_bits_to_float(0x8000)));
}

TEST(Half, EveryPatternDecodesLikeTheReferenceAndRoundTrips) {
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    float value = f16_bits_to_float(static_cast<uint16_t>(bits));
    double expected = reference_f16_value(static_cast<uint16_t>(bits));
    if (std::isnan(expected)) {
      ASSERT_TRUE(std::isnan(value)) << bits;
      ASSERT_TRUE(std::isnan(f16_bits_to_float(float_to_f16_bits(value)))) << bits;
      continue;
    }
    ASSERT_EQ(static_cast<double>(value), expected) << bits;
    ASSERT_EQ(float_to_f16_bits(value), bits) << bits;
  }
}

TEST(Half, RandomFloatsRoundToNearestEven) {
  // Sorted finite non-negative halves, for a brute-force nearest search.
  std::vector<double> halves;
  for (uint32_t bits = 0; bits < 0x7C00; ++bits) halves.push_back(reference_f16_value(bits));
  std::mt19937 rng(1234);
  std::uniform_real_distribution<float> exponent(-27.0f, 16.5f);
  for (int i = 0; i < 200000; ++i) {
    float x = std::exp2(exponent(rng));
    uint16_t got = float_to_f16_bits(x);
    auto upper = std::lower_bound(halves.begin(), halves.end(), static_cast<double>(x));
    uint16_t expected;
    if (upper == halves.end()) {
      // Beyond 65504: infinity from 65520 up (half an ulp past the max).
      expected = x >= 65520.0f ? 0x7C00 : 0x7BFF;
    } else if (*upper == x || upper == halves.begin()) {
      expected = static_cast<uint16_t>(upper - halves.begin());
    } else {
      auto lower = upper - 1;
      double down = x - *lower, up = *upper - x;
      auto pick = down < up
                      ? lower
                      : (up < down ? upper : ((lower - halves.begin()) % 2 == 0 ? lower : upper));
      expected = static_cast<uint16_t>(pick - halves.begin());
    }
    ASSERT_EQ(got, expected) << "x=" << x;
    ASSERT_EQ(float_to_f16_bits(-x), expected | 0x8000) << "x=-" << x;
  }
}

TEST(BFloat16, KnownBitPatterns) {
  EXPECT_EQ(float_to_bf16_bits(1.0f), 0x3F80);
  EXPECT_EQ(float_to_bf16_bits(3.14159265f), 0x4049);
  EXPECT_EQ(float_to_bf16_bits(1.0f + std::ldexp(1.0f, -8)), 0x3F80);      // tie -> even
  EXPECT_EQ(float_to_bf16_bits(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3F82);  // tie -> even
  EXPECT_EQ(float_to_bf16_bits(3.4028235e38f), 0x7F80);  // max float rounds to infinity
  EXPECT_EQ(float_to_bf16_bits(-INFINITY), 0xFF80);
  EXPECT_EQ(float_to_bf16_bits(-0.0f), 0x8000);
  EXPECT_EQ(float_to_bf16_bits(std::ldexp(1.0f, -133)), 0x0001);  // subnormal kept
  uint16_t nan = float_to_bf16_bits(NAN);
  EXPECT_EQ(nan & 0x7F80, 0x7F80);
  EXPECT_NE(nan & 0x007F, 0);
  // A NaN whose payload sits only in the low 16 bits must not become infinity.
  EXPECT_TRUE(std::isnan(bf16_bits_to_float(float_to_bf16_bits(bits_to_float(0x7F800001u)))));
  EXPECT_EQ(bf16_bits_to_float(0x4049), 3.140625f);
}

TEST(BFloat16, EveryPatternRoundTrips) {
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    float value = bf16_bits_to_float(static_cast<uint16_t>(bits));
    if (std::isnan(value)) continue;
    ASSERT_EQ(float_to_bf16_bits(value), bits) << bits;
  }
}

TEST(ElementAccess, ConvertsAndSaturates) {
  std::vector<uint8_t> storage(16);
  store_from_double(storage.data(), DType::kI8, 0, 300.0);
  EXPECT_EQ(load_as_double(storage.data(), DType::kI8, 0), 127.0);
  store_from_double(storage.data(), DType::kU8, 1, -5.0);
  EXPECT_EQ(load_as_double(storage.data(), DType::kU8, 1), 0.0);
  store_from_double(storage.data(), DType::kI32, 1, NAN);
  EXPECT_EQ(load_as_double(storage.data(), DType::kI32, 1), 0.0);
  store_from_double(storage.data(), DType::kBF16, 0, 1.0 + 1.0 / 256);
  EXPECT_EQ(load_as_double(storage.data(), DType::kBF16, 0), 1.0);
  store_from_double(storage.data(), DType::kBool, 3, -2.0);
  EXPECT_EQ(load_as_double(storage.data(), DType::kBool, 3), 1.0);
  EXPECT_THROW(load_as_double(storage.data(), DType::kQ8_0, 0), Error);
}

}  // namespace
}  // namespace flagstone
