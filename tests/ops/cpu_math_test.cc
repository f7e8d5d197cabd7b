// Tests of the cpu kernels' scalar building blocks (src/ops/cpu/cpu_common.h): the select-based
// f16/bf16 conversions against the runtime's own (base/half.h) for every half and a sweep of
// floats, and exp_f32 against double-precision exp.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "cpu/cpu_common.h"
#include "flagstone/base/half.h"

namespace flagstone::ops::cpu {
namespace {

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Every float class: a stride through all bit patterns plus the edges of each conversion.
std::vector<float> float_sweep() {
  std::vector<float> v;
  for (uint64_t u = 0; u <= 0xffffffffu; u += 65521)
    v.push_back(from_bits(static_cast<uint32_t>(u)));
  for (float f :
       {0.0f, -0.0f, 65504.0f, 65519.0f, 65520.0f, 6.1035156e-05f, 5.9604645e-08f, 2.9802322e-08f,
        2.9802326e-08f, 1.0009766f, 1.0004883f, 1.0014648f, std::numeric_limits<float>::infinity(),
        -std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN(),
        std::numeric_limits<float>::max(), std::numeric_limits<float>::denorm_min()})
    v.push_back(f);
  return v;
}

TEST(CpuMath, HalfToFloatEveryValue) {
  for (uint32_t h = 0; h <= 0xffff; ++h) {
    float mine = half_to_float(static_cast<uint16_t>(h));
    float ref = f16_bits_to_float(static_cast<uint16_t>(h));
    if (std::isnan(ref)) {
      EXPECT_TRUE(std::isnan(mine)) << std::hex << h;
    } else {
      ASSERT_EQ(as_bits(mine), as_bits(ref)) << std::hex << h;
    }
    EXPECT_EQ(as_bits(bf16_to_float(static_cast<uint16_t>(h))),
              as_bits(bf16_bits_to_float(static_cast<uint16_t>(h))));
  }
}

TEST(CpuMath, FloatToHalfAndBf16) {
  for (float f : float_sweep()) {
    if (std::isnan(f)) {
      EXPECT_EQ(float_to_half(f) & 0x7c00, 0x7c00);
      EXPECT_NE(float_to_half(f) & 0x03ff, 0);
      EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(f))));
      continue;
    }
    ASSERT_EQ(float_to_half(f), float_to_f16_bits(f)) << f;
    ASSERT_EQ(float_to_bf16(f), float_to_bf16_bits(f)) << f;
  }
}

TEST(CpuMath, ExpWithinTwoUlp) {
  int checked = 0;
  for (double x = -87.0; x <= 88.72; x += 0.000731) {
    float xf = static_cast<float>(x);
    double want = std::exp(static_cast<double>(xf));
    float got = exp_f32(xf);
    double ulp = std::ldexp(1.0, std::ilogb(want) - 23);
    ASSERT_LE(std::fabs(got - want), 2 * ulp) << "x=" << xf;
    ++checked;
  }
  EXPECT_GT(checked, 200000);
  EXPECT_EQ(exp_f32(0.0f), 1.0f);
  EXPECT_EQ(exp_f32(-100.0f), 0.0f);
  EXPECT_EQ(exp_f32(-std::numeric_limits<float>::infinity()), 0.0f);
  EXPECT_TRUE(std::isinf(exp_f32(89.0f)));
  EXPECT_TRUE(std::isinf(exp_f32(std::numeric_limits<float>::infinity())));
  EXPECT_TRUE(std::isnan(exp_f32(std::numeric_limits<float>::quiet_NaN())));
}

}  // namespace
}  // namespace flagstone::ops::cpu
