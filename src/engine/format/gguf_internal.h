// Helpers shared by the GGUF reader and writer (not part of the public API).
// Sizes of scalar value types and the validity test for type ids read from files.
#pragma once

#include <cstddef>
#include <cstdint>

#include "flagstone/engine/format/gguf.h"

namespace flagstone::engine::format {

inline constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" read as a little-endian u32

// Bytes of one scalar of `type`; 0 for strings and arrays.
size_t gguf_scalar_size(GgufValueType type);
bool gguf_value_type_valid(uint32_t type);

}  // namespace flagstone::engine::format
