// What the fuzz targets and the corrupted-file test do with one input: parse it as safetensors
// or GGUF and touch everything the parser returns. Only flagstone::Error may escape.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "flagstone/base/error.h"
#include "flagstone/engine/format/gguf.h"
#include "flagstone/engine/format/quant.h"
#include "flagstone/engine/format/safetensors.h"
#include "flagstone/engine/model_config.h"

namespace flagstone::fuzz {

// Reads every byte of a span so that an out-of-bounds view faults under ASan.
inline uint64_t touch(std::span<const std::byte> bytes) {
  uint64_t sum = 0;
  for (std::byte b : bytes) sum += std::to_integer<uint8_t>(b);
  return sum;
}

// Parses `data` as safetensors; returns true when it parsed. Throws only flagstone::Error.
inline bool exercise_safetensors(const uint8_t* data, size_t size) {
  std::vector<std::byte> bytes(reinterpret_cast<const std::byte*>(data),
                               reinterpret_cast<const std::byte*>(data) + size);
  auto file = engine::format::SafetensorsFile::parse(
      engine::format::MappedFile::from_bytes("fuzz.safetensors", std::move(bytes)));
  uint64_t sum = 0;
  for (const auto& info : file.tensors()) {
    sum += touch(file.data(info.name));
    if (info.nbytes() <= (1u << 20)) sum += file.load(info.name).numel();
  }
  for (const auto& [key, value] : file.metadata()) sum += key.size() + value.size();
  return sum != 1;  // keeps the work observable
}

// Parses `data` as GGUF, reads every value with the getter its type allows, loads and
// dequantizes small tensors, and derives a model config when the metadata allows.
inline bool exercise_gguf(const uint8_t* data, size_t size) {
  using engine::format::GgufValueType;
  std::vector<std::byte> bytes(reinterpret_cast<const std::byte*>(data),
                               reinterpret_cast<const std::byte*>(data) + size);
  auto file = engine::format::GgufFile::parse(
      engine::format::MappedFile::from_bytes("fuzz.gguf", std::move(bytes)));
  double sum = 0;
  for (const auto& [key, value] : file.metadata()) {
    try {
      if (value.is_array()) {
        if (value.element_type() == GgufValueType::kString) {
          sum += static_cast<double>(value.as_string_array().size());
        } else if (value.element_type() != GgufValueType::kBool) {
          for (double v : value.as_float_array()) sum += v;
        }
      } else if (value.type() == GgufValueType::kString) {
        sum += static_cast<double>(value.as_string().size());
      } else if (value.type() == GgufValueType::kBool) {
        sum += value.as_bool();
      } else {
        sum += value.as_float();
      }
    } catch (const Error&) {
    }
  }
  for (const auto& info : file.tensors()) {
    sum += static_cast<double>(touch(file.data(info.name)));
    if (!info.dtype || info.nbytes > (1u << 20)) continue;
    Tensor t = file.load(info.name);
    const auto& dtype = dtype_info(*info.dtype);
    if (dtype.is_float || dtype.is_quantized) {
      std::vector<float> values(static_cast<size_t>(t.numel()));
      engine::format::dequantize(*info.dtype, file.data(info.name).data(), values.data(),
                                 t.numel());
      for (float v : values) sum += v;
    }
  }
  try {
    sum += static_cast<double>(engine::model_config_from_gguf(file).hidden_size);
  } catch (const Error&) {
  }
  return sum != 1.5;
}

}  // namespace flagstone::fuzz
