// The table of dtype facts and the dtype-name parser.
#include "flagstone/base/dtype.h"

#include <algorithm>
#include <array>
#include <cctype>

#include "flagstone/base/error.h"

namespace flagstone {
namespace {

// Indexed by DType. Block layouts follow GGUF: q8_0 = f16 scale + 32 int8; q4_0 = f16 scale +
// 16 bytes of nibbles; q4_K = 2 f16 + 12 scale bytes + 128 nibble bytes per 256; q6_K = 128 low
// bytes + 64 high bytes + 16 scales + f16 per 256.
constexpr std::array<DTypeInfo, kNumDTypes> kInfos = {{
    {"f64", 8, 1, true, false, true, false},
    {"f32", 4, 1, true, false, true, false},
    {"f16", 2, 1, true, false, true, false},
    {"bf16", 2, 1, true, false, true, false},
    {"i64", 8, 1, false, true, true, false},
    {"i32", 4, 1, false, true, true, false},
    {"i16", 2, 1, false, true, true, false},
    {"i8", 1, 1, false, true, true, false},
    {"u8", 1, 1, false, true, false, false},
    {"bool", 1, 1, false, false, false, false},
    {"q8_0", 34, 32, false, false, true, true},
    {"q4_0", 18, 32, false, false, true, true},
    {"q4_k", 144, 256, false, false, true, true},
    {"q6_k", 210, 256, false, false, true, true},
}};

struct Alias {
  std::string_view text;
  DType dtype;
};

constexpr Alias kAliases[] = {
    {"float64", DType::kF64},   {"double", DType::kF64},  {"float32", DType::kF32},
    {"float", DType::kF32},     {"float16", DType::kF16}, {"half", DType::kF16},
    {"bfloat16", DType::kBF16}, {"int64", DType::kI64},   {"long", DType::kI64},
    {"int32", DType::kI32},     {"int", DType::kI32},     {"int16", DType::kI16},
    {"int8", DType::kI8},       {"uint8", DType::kU8},    {"boolean", DType::kBool},
};

}  // namespace

const DTypeInfo& dtype_info(DType dtype) {
  auto index = static_cast<size_t>(dtype);
  FS_CHECK(index < kInfos.size(), kInvalidArgument, "unknown dtype code ", index);
  return kInfos[index];
}

size_t dtype_size(DType dtype) {
  const DTypeInfo& info = dtype_info(dtype);
  FS_CHECK(!info.is_quantized, kInvalidArgument, "dtype ", info.name,
           " is block-quantized and has no per-element size");
  return info.block_bytes;
}

size_t dtype_bytes(DType dtype, int64_t elements) {
  const DTypeInfo& info = dtype_info(dtype);
  FS_CHECK(elements >= 0, kInvalidArgument, "negative element count ", elements);
  FS_CHECK(elements % info.block_elements == 0, kInvalidArgument, elements, " elements of ",
           info.name, " are not a whole number of ", info.block_elements, "-value blocks");
  return static_cast<size_t>(elements / info.block_elements) * info.block_bytes;
}

DType parse_dtype(std::string_view text) {
  std::string lower(text);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (int i = 0; i < kNumDTypes; ++i) {
    if (kInfos[i].name == lower) return static_cast<DType>(i);
  }
  for (const Alias& alias : kAliases) {
    if (alias.text == lower) return alias.dtype;
  }
  throw_error(ErrorCategory::kInvalidArgument, "unknown dtype '", text,
              "' (expected one of f64 f32 f16 bf16 i64 i32 i16 i8 u8 bool q8_0 q4_0 q4_k q6_k)");
}

}  // namespace flagstone
