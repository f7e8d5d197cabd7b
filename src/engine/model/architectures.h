// The built-in architectures, one file each (llama.cc, mistral.cc, qwen2.cc, qwen3.cc); a new
// one adds its file, a line here and a line in architecture.cc's list.
#pragma once

#include "flagstone/base/error.h"
#include "flagstone/engine/model/architecture.h"

namespace flagstone::engine::detail {

Architecture llama_architecture();
Architecture mistral_architecture();
Architecture qwen2_architecture();
Architecture qwen3_architecture();

// Rope layout of llama-family weights: GGUF writers interleave the q/k rows, which turns the
// Hugging Face half-split rotation into rotation of adjacent pairs.
inline std::string llama_rope_style(WeightFormat format) {
  return format == WeightFormat::kGguf ? "gptj" : "neox";
}

}  // namespace flagstone::engine::detail
