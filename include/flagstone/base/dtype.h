// Element types of tensors: the plain numeric types plus GGUF-style block-quantized types.
// Block types store `block_elements` values in `block_bytes`; plain types have blocks of one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace flagstone {

enum class DType : uint8_t {
  kF64,
  kF32,
  kF16,
  kBF16,
  kI64,
  kI32,
  kI16,
  kI8,
  kU8,
  kBool,
  // Block-quantized (GGUF layouts). Tensors of these types are storage only: views must keep
  // whole blocks along the last dimension.
  kQ8_0,
  kQ4_0,
  kQ4_K,
  kQ6_K,
};

inline constexpr int kNumDTypes = 14;

struct DTypeInfo {
  std::string_view name;  // "f32", "bf16", "q8_0"...
  size_t block_bytes;     // bytes of one block (the element size for plain types)
  int block_elements;     // values per block (1 for plain types)
  bool is_float;
  bool is_integer;  // bool is neither float nor integer
  bool is_signed;
  bool is_quantized;
};

const DTypeInfo& dtype_info(DType dtype);
inline std::string_view dtype_name(DType dtype) { return dtype_info(dtype).name; }
// Size in bytes of one element; throws for block-quantized types, which have none.
size_t dtype_size(DType dtype);
// Bytes needed for `elements` values; for block types `elements` must be a whole number of blocks.
size_t dtype_bytes(DType dtype, int64_t elements);
inline bool is_floating(DType dtype) { return dtype_info(dtype).is_float; }
inline bool is_quantized(DType dtype) { return dtype_info(dtype).is_quantized; }
// Parses "f32", "float32", "bf16", "int64", "q4_k"...; throws kInvalidArgument naming the text.
DType parse_dtype(std::string_view text);

// Maps a C++ scalar type to its DType (for typed accessors and tests).
template <typename T>
struct DTypeOf;

}  // namespace flagstone
