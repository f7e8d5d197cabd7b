// Models with random weights in the shapes of real checkpoints (Llama-3.2-1B, Llama-3-8B...),
// built in memory so benchmarks need no download and CI can exercise full-size layouts.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "flagstone/engine/model/model.h"

namespace flagstone::engine {

// The configuration of a named shape: "llama-1b" (Llama-3.2-1B), "llama-8b" (Llama-3-8B),
// "qwen2-0.5b" (Qwen2.5-0.5B) or "tiny" (a 2-layer model for tests). kNotFound lists the names.
ModelConfig synthetic_config(std::string_view preset);
std::vector<std::string> synthetic_presets();

// A model of `config`'s shapes whose weights are stored as `weight_dtype` (f32, f16, bf16, q8_0
// or q4_0, as a checkpoint or GGUF file would hold them) and loaded as `options` ask, exactly as
// a file would be. Weights are drawn once from a seeded uniform pool that every tensor reads
// from, so even 8B-sized models cost one tensor's worth of host memory to generate; the values
// are meaningless but finite and of realistic magnitude.
std::unique_ptr<Model> synthetic_model(const ModelConfig& config, DType weight_dtype,
                                       const ModelOptions& options = {}, uint64_t seed = 0);

}  // namespace flagstone::engine
