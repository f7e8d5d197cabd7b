// GGML block formats: blocks built by hand from the spec's field descriptions decode to values
// computed element by element here, quantization produces the blocks the reference formulas
// give, and round trips stay within the format's error bound.
#include "flagstone/engine/format/quant.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "engine/format/test_util.h"
#include "flagstone/base/half.h"

namespace flagstone::engine::format {
namespace {

constexpr uint16_t kHalfOne = 0x3c00, kHalfMinusOne = 0xbc00, kHalfHalf = 0x3800,
                   kHalfQuarter = 0x3400;

TEST(Quant, Q8_0DecodesScaleTimesQuant) {
  BlockQ8_0 block;
  block.d = kHalfHalf;
  for (int j = 0; j < 32; ++j) block.qs[j] = static_cast<int8_t>(j * 8 - 128);
  float out[32];
  dequantize(DType::kQ8_0, &block, out, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(out[j], 0.5f * (j * 8 - 128)) << j;
}

TEST(Quant, Q4_0DecodesNibblesMinusEight) {
  BlockQ4_0 block;
  block.d = kHalfHalf;
  // Byte j: low nibble j -> element j, high nibble 15 - j -> element j + 16.
  for (int j = 0; j < 16; ++j) block.qs[j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  float out[32];
  dequantize(DType::kQ4_0, &block, out, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(out[j], 0.5f * (j - 8)) << j;
    EXPECT_EQ(out[j + 16], 0.5f * (7 - j)) << j;
  }
}

TEST(Quant, Q4_KDecodesSixBitScalesAndMins) {
  const int sc[8] = {1, 2, 3, 4, 5, 20, 33, 63};
  const int mn[8] = {0, 7, 14, 63, 17, 2, 40, 63};
  BlockQ4_K block;
  block.d = kHalfOne;
  block.dmin = kHalfHalf;
  // 12 bytes: sub-blocks 0-3 in the low 6 bits of bytes 0-3 (scales) and 4-7 (mins); sub-blocks
  // 4-7 keep their low 4 bits in bytes 8-11 (scale low nibble, min high nibble) and their top 2
  // bits in the top bits of bytes 0-3 (scales) and 4-7 (mins).
  for (int j = 0; j < 4; ++j) {
    block.scales[j] = static_cast<uint8_t>(sc[j] | ((sc[j + 4] >> 4) << 6));
    block.scales[j + 4] = static_cast<uint8_t>(mn[j] | ((mn[j + 4] >> 4) << 6));
    block.scales[j + 8] = static_cast<uint8_t>((sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4));
  }
  for (int i = 0; i < 128; ++i) block.qs[i] = static_cast<uint8_t>(i * 37 + 11);
  std::vector<float> out(256);
  dequantize(DType::kQ4_K, &block, out.data(), 256);
  for (int e = 0; e < 256; ++e) {
    // Element e lies in group e / 64 of 32 bytes: the first 32 of the group are low nibbles
    // (sub-block 2g), the next 32 high nibbles (sub-block 2g + 1).
    int group = e / 64, within = e % 64, l = within % 32;
    int sub = 2 * group + (within >= 32 ? 1 : 0);
    uint8_t byte = block.qs[32 * group + l];
    int q = within < 32 ? (byte & 15) : (byte >> 4);
    double want = 1.0 * sc[sub] * q - 0.5 * mn[sub];
    EXPECT_EQ(out[e], want) << "element " << e;
  }
}

TEST(Quant, Q6_KDecodesSixBitQuantsWithSignedScales) {
  BlockQ6_K block;
  block.d = kHalfQuarter;
  for (int i = 0; i < 16; ++i) block.scales[i] = static_cast<int8_t>(i - 8);
  for (int i = 0; i < 128; ++i) block.ql[i] = static_cast<uint8_t>(i * 53 + 7);
  for (int i = 0; i < 64; ++i) block.qh[i] = static_cast<uint8_t>(i * 29 + 101);
  std::vector<float> out(256);
  dequantize(DType::kQ6_K, &block, out.data(), 256);
  for (int e = 0; e < 256; ++e) {
    // Halves of 128; within a half, quarter k of 32 values takes its low 4 bits from ql[l] (k 0,
    // 2: low/high nibble) or ql[l + 32] (k 1, 3) and its high 2 bits from bits 2k..2k+1 of qh[l].
    int half = e / 128, r = e % 128, k = r / 32, l = r % 32;
    uint8_t low_byte = block.ql[64 * half + l + (k % 2 == 1 ? 32 : 0)];
    int low = k < 2 ? (low_byte & 15) : (low_byte >> 4);
    int high = (block.qh[32 * half + l] >> (2 * k)) & 3;
    int q = (low | (high << 4)) - 32;
    int scale = block.scales[8 * half + l / 16 + 2 * k];
    double want = 0.25 * scale * q;
    EXPECT_EQ(out[e], want) << "element " << e;
  }
}

TEST(Quant, Q8_0QuantizesExactBlockByHand) {
  // amax 127 gives scale exactly 1, so every quant equals its input.
  float x[32];
  x[0] = 127;
  x[1] = -127;
  for (int j = 2; j < 32; ++j) x[j] = static_cast<float>(j - 16);
  BlockQ8_0 block;
  quantize(DType::kQ8_0, x, &block, 32);
  EXPECT_EQ(block.d, kHalfOne);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(block.qs[j], static_cast<int8_t>(x[j])) << j;
}

TEST(Quant, Q4_0QuantizesExactBlocksByHand) {
  // The signed value of largest magnitude maps to -8: here -8 itself, so the scale is 1.
  float x[32];
  for (int j = 0; j < 16; ++j) {
    x[j] = static_cast<float>(j - 8);
    x[j + 16] = static_cast<float>(7 - j);
  }
  BlockQ4_0 block;
  quantize(DType::kQ4_0, x, &block, 32);
  EXPECT_EQ(block.d, kHalfOne);
  for (int j = 0; j < 16; ++j) EXPECT_EQ(block.qs[j], j | ((15 - j) << 4)) << j;

  // A positive extreme flips the scale to -1; its negation (-8) would need code 16 and is
  // clamped to 15, the rule of the reference quantizer.
  float y[32] = {};
  y[0] = 8;
  y[1] = -8;
  y[2] = 3;
  quantize(DType::kQ4_0, y, &block, 32);
  EXPECT_EQ(block.d, kHalfMinusOne);
  EXPECT_EQ(block.qs[0] & 15, 0);   // 8 / -1 + 8 = 0
  EXPECT_EQ(block.qs[1] & 15, 15);  // clamped from 16
  EXPECT_EQ(block.qs[2] & 15, 5);   // 3 / -1 + 8 = 5
  EXPECT_EQ(block.qs[3] & 15, 8);   // zero
  EXPECT_EQ(block.qs[0] >> 4, 8);   // element 16 is zero
}

std::vector<float> random_values(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(gen);
  return v;
}

TEST(Quant, Q8_0MatchesTheReferenceFormulaOnRandomData) {
  std::vector<float> x = random_values(32 * 64, 7);
  std::vector<BlockQ8_0> blocks(64);
  quantize(DType::kQ8_0, x.data(), blocks.data(), static_cast<int64_t>(x.size()));
  for (int b = 0; b < 64; ++b) {
    double amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(double{x[b * 32 + j]}));
    double d = amax / 127.0;
    EXPECT_EQ(blocks[b].d, float_to_f16_bits(static_cast<float>(d))) << "block " << b;
    for (int j = 0; j < 32; ++j) {
      double scaled = x[b * 32 + j] / d;
      // Skip values whose rounding would depend on float vs double within 1e-4 of a tie.
      if (std::fabs(std::fabs(scaled - std::trunc(scaled)) - 0.5) < 1e-4) continue;
      EXPECT_EQ(blocks[b].qs[j], static_cast<int8_t>(std::round(scaled))) << b << "," << j;
    }
  }
}

TEST(Quant, RoundTripsStayWithinTheFormatBound) {
  const int64_t n = 32 * 4096;  // large enough to be split over the thread pool
  std::vector<float> x = random_values(static_cast<size_t>(n), 11);
  for (DType dtype : {DType::kQ8_0, DType::kQ4_0}) {
    SCOPED_TRACE(dtype_name(dtype));
    std::vector<std::byte> packed = quantize(dtype, x.data(), n);
    ASSERT_EQ(packed.size(), dtype_bytes(dtype, n));
    std::vector<float> back(static_cast<size_t>(n));
    dequantize(dtype, packed.data(), back.data(), n);
    for (int64_t b = 0; b < n / 32; ++b) {
      double amax = 0;
      for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(double{x[b * 32 + j]}));
      // Q8_0: half a step (amax/127) plus the f16 rounding of the scale over 127 steps.
      // Q4_0: one step (amax/8) for the clamped extreme, plus the scale's f16 rounding.
      double bound = dtype == DType::kQ8_0 ? 0.57 * amax / 127 : 1.01 * amax / 8;
      for (int j = 0; j < 32; ++j) {
        ASSERT_LE(std::fabs(back[b * 32 + j] - x[b * 32 + j]), bound) << b << "," << j;
      }
    }
  }
  // f16 and bf16 through the same entry points.
  std::vector<std::byte> h = quantize(DType::kF16, x.data(), 64);
  std::vector<float> back(64);
  dequantize(DType::kF16, h.data(), back.data(), 64);
  for (int i = 0; i < 64; ++i) EXPECT_EQ(back[i], static_cast<float>(Half(x[i])));
  std::vector<std::byte> bf = quantize(DType::kBF16, x.data(), 64);
  dequantize(DType::kBF16, bf.data(), back.data(), 64);
  for (int i = 0; i < 64; ++i) EXPECT_EQ(back[i], static_cast<float>(BFloat16(x[i])));
}

// The K-quants' own quantizers, decoded by the K-quant dequantizers above (checked bit by bit
// against hand-built blocks): every value within the error the format allows for its sub-block.
TEST(Quant, KQuantRoundTripsStayWithinTheFormatBound) {
  const int64_t n = 256 * 512;
  std::vector<float> x = random_values(static_cast<size_t>(n), 12);
  for (int64_t i = 0; i < 256; ++i) x[static_cast<size_t>(i)] = 0.0f;  // an all-zero block
  for (int64_t i = 256; i < 512; ++i)
    x[static_cast<size_t>(i)] = -0.25f - 1e-3f * i;  // all negative
  for (DType dtype : {DType::kQ6_K, DType::kQ4_K}) {
    SCOPED_TRACE(dtype_name(dtype));
    std::vector<std::byte> packed = quantize(dtype, x.data(), n);
    ASSERT_EQ(packed.size(), dtype_bytes(dtype, n));
    std::vector<float> back(static_cast<size_t>(n));
    dequantize(dtype, packed.data(), back.data(), n);
    double squared_error = 0, squared = 0;
    for (int64_t b = 0; b < n / 256; ++b) {
      const float* xb = x.data() + b * 256;
      const int sub = dtype == DType::kQ6_K ? 16 : 32;
      std::vector<double> amax(256 / sub, 0.0), lo(256 / sub, 0.0), hi(256 / sub, -1e30);
      for (int j = 0; j < 256; ++j) {
        amax[j / sub] = std::max(amax[j / sub], std::fabs(double{xb[j]}));
        lo[j / sub] = std::min(lo[j / sub], double{xb[j]});
        hi[j / sub] = std::max(hi[j / sub], double{xb[j]});
      }
      double top_amax = *std::max_element(amax.begin(), amax.end()), top_range = 0, top_min = 0;
      for (size_t s = 0; s < lo.size(); ++s) {
        top_range = std::max(top_range, hi[s] - lo[s]);
        top_min = std::max(top_min, -lo[s]);
      }
      for (int j = 0; j < 256; ++j) {
        const size_t s = static_cast<size_t>(j / sub);
        double bound;
        if (dtype == DType::kQ6_K) {
          // One step for the clamped extreme of opposite sign, plus 32 times the rounding of the
          // sub-block scale to a multiple of d = top_amax / (32 * 127).
          bound = 1.01 * amax[s] / 32 + 16.5 * top_amax / (32 * 127) + 1e-7;
        } else {
          // Half a step (the range over 15, rounded up to a multiple of d = top_range / 945)
          // plus half of dmin = top_min / 63 for the stored min, with f16 slack.
          bound = 0.51 * ((hi[s] - lo[s]) / 15 + top_range / 945) + 0.55 * top_min / 63 + 1e-7;
        }
        const double err = std::fabs(double{back[b * 256 + j]} - xb[j]);
        ASSERT_LE(err, bound) << "block " << b << " value " << j;
        squared_error += err * err;
        squared += double{xb[j]} * xb[j];
      }
    }
    // Overall the error is a small fraction of the signal (a wrong layout would be ~100%).
    EXPECT_LT(std::sqrt(squared_error / squared), dtype == DType::kQ6_K ? 0.03 : 0.12);
    for (int j = 0; j < 256; ++j) EXPECT_EQ(back[static_cast<size_t>(j)], 0.0f);
  }
}

TEST(Quant, RejectsPartialBlocksAndUnsupportedTypes) {
  std::vector<float> x(48);
  std::vector<std::byte> out(1024);
  EXPECT_FS_ERROR(quantize(DType::kQ8_0, x.data(), out.data(), 48), kInvalidArgument, "48", "q8_0");
  EXPECT_FS_ERROR(quantize(DType::kQ4_K, x.data(), out.data(), 48), kInvalidArgument, "q4_k");
  EXPECT_FS_ERROR(quantize(DType::kI32, x.data(), out.data(), 4), kUnsupported, "i32");
  EXPECT_FS_ERROR(dequantize(DType::kQ6_K, out.data(), x.data(), 32), kInvalidArgument, "q6_k");
  EXPECT_FS_ERROR(dequantize(DType::kI32, out.data(), x.data(), 4), kUnsupported, "i32");
}

}  // namespace
}  // namespace flagstone::engine::format
