// DType facts and parsing, including block-quantized sizes from the GGUF layouts.
#include <gtest/gtest.h>

#include "flagstone/base/dtype.h"
#include "flagstone/base/error.h"

namespace flagstone {
namespace {

TEST(DType, SizesMatchTheirCTypes) {
  EXPECT_EQ(dtype_size(DType::kF64), sizeof(double));
  EXPECT_EQ(dtype_size(DType::kF32), sizeof(float));
  EXPECT_EQ(dtype_size(DType::kF16), 2u);
  EXPECT_EQ(dtype_size(DType::kBF16), 2u);
  EXPECT_EQ(dtype_size(DType::kI64), sizeof(int64_t));
  EXPECT_EQ(dtype_size(DType::kI16), sizeof(int16_t));
  EXPECT_EQ(dtype_size(DType::kBool), 1u);
  EXPECT_THROW(dtype_size(DType::kQ4_0), Error);
}

TEST(DType, BlockTypesCountWholeBlocks) {
  // q8_0: 2-byte scale + 32 int8; q4_0: 2-byte scale + 32 nibbles.
  EXPECT_EQ(dtype_bytes(DType::kQ8_0, 64), 2u * (2 + 32));
  EXPECT_EQ(dtype_bytes(DType::kQ4_0, 32), 2u + 16);
  // q4_K: 2 halves + 12 scale bytes + 128 nibble bytes; q6_K: 128 + 64 + 16 + 2.
  EXPECT_EQ(dtype_bytes(DType::kQ4_K, 256), 2u * 2 + 12 + 128);
  EXPECT_EQ(dtype_bytes(DType::kQ6_K, 512), 2u * (128 + 64 + 16 + 2));
  EXPECT_THROW(dtype_bytes(DType::kQ8_0, 33), Error);
  EXPECT_EQ(dtype_bytes(DType::kF32, 3), 12u);
}

TEST(DType, ParsesNamesAndAliases) {
  for (int i = 0; i < kNumDTypes; ++i) {
    auto dtype = static_cast<DType>(i);
    EXPECT_EQ(parse_dtype(dtype_name(dtype)), dtype);
  }
  EXPECT_EQ(parse_dtype("float32"), DType::kF32);
  EXPECT_EQ(parse_dtype("BF16"), DType::kBF16);
  EXPECT_EQ(parse_dtype("int64"), DType::kI64);
  try {
    parse_dtype("f8");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("'f8'"), std::string::npos);
  }
}

TEST(DType, Classification) {
  EXPECT_TRUE(is_floating(DType::kBF16));
  EXPECT_FALSE(is_floating(DType::kI32));
  EXPECT_TRUE(dtype_info(DType::kI8).is_signed);
  EXPECT_FALSE(dtype_info(DType::kU8).is_signed);
  EXPECT_FALSE(dtype_info(DType::kBool).is_integer);
  EXPECT_TRUE(is_quantized(DType::kQ6_K));
}

}  // namespace
}  // namespace flagstone
