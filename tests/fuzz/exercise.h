// What the fuzz targets and the corrupted-file test do with one input: parse it as safetensors,
// GGUF, tokenizer.json or a chat template and use what comes back. Only flagstone::Error may
// escape.
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
#include "flagstone/engine/tokenizer/chat_template.h"
#include "flagstone/engine/tokenizer/tokenizer.h"

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

// Text with the things tokenizers special-case: several scripts, emoji, runs of spaces and
// newlines, digits, code, and a few special-token spellings.
inline constexpr std::string_view kFuzzText =
    "Hello  world!\n\n  x = 12345; // \xC3\xA9t\xC3\xA9 \xE4\xB8\xAD\xE6\x96\x87 "
    "\xF0\x9F\x98\x80 <s></s><|endoftext|><|im_start|>\t\r\n";

// Builds a tokenizer from `data` as tokenizer.json (no config), then encodes and decodes the
// sample text and every id the vocabulary claims. Input starting with '{' twice is split at
// the first "\n\n" into tokenizer.json and tokenizer_config.json.
inline bool exercise_tokenizer_json(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size), config;
  if (size > 2 && data[0] == '{' && data[1] == '{') {
    text.remove_prefix(1);
    size_t split = text.find("\n\n");
    if (split != std::string_view::npos) {
      config = text.substr(split + 2);
      text = text.substr(0, split);
    }
  }
  engine::Tokenizer tok = engine::Tokenizer::from_json(text, config, "fuzz/tokenizer.json");
  size_t sum = 0;
  for (bool special : {false, true}) {
    std::vector<engine::TokenId> ids = tok.encode(kFuzzText, special);
    sum += tok.decode(ids, special).size() + ids.size();
  }
  const size_t n = std::min<size_t>(tok.vocab_size(), 4096);
  std::vector<engine::TokenId> all;
  for (size_t i = 0; i < n; ++i) all.push_back(static_cast<engine::TokenId>(i));
  sum += tok.decode(all, false).size() + tok.decode(all, true).size();
  for (size_t i = 0; i < n; ++i)
    sum += tok.id_to_token(static_cast<engine::TokenId>(i)).has_value();
  sum += tok.chat_template().size() + tok.stop_ids().size();
  return sum != 1;
}

// Parses `data` as a chat template and renders a conversation with every role and a tool call.
inline bool exercise_chat_template(const uint8_t* data, size_t size) {
  std::string_view source(reinterpret_cast<const char*>(data), size);
  engine::ChatTemplate tmpl(source, "fuzz/chat_template");
  nlohmann::ordered_json messages = nlohmann::ordered_json::parse(R"([
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi there, 42?"},
    {"role": "assistant", "content": "Hello!", "tool_calls": [{"type": "function",
      "function": {"name": "f", "arguments": {"x": 1}}}]},
    {"role": "tool", "content": "{\"y\": 2}"},
    {"role": "user", "content": "\u00e9\u4e2d\ud83d\ude00"}])");
  engine::ChatTemplateOptions options;
  options.bos_token = "<s>";
  options.eos_token = "</s>";
  size_t sum = 0;
  for (bool prompt : {false, true}) {
    options.add_generation_prompt = prompt;
    try {
      sum += tmpl.render(messages, options).size();
    } catch (const Error&) {
      // raise_exception() and evaluation errors are part of the language; keep going.
    }
  }
  return sum != 1;
}

}  // namespace flagstone::fuzz
