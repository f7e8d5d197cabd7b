// The architecture registry: what tells llama, mistral, qwen2, qwen3... apart inside the one
// decoder-only transformer, so that adding an architecture is one small file plus its test.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "flagstone/engine/model_config.h"

namespace flagstone::engine {

// Where the weights come from; GGUF writers reorder some tensors (llama's q/k rows).
enum class WeightFormat { kHuggingFace, kGguf };

// The switches of the shared decoder block (pre-norm attention + gated MLP, RMSNorm, rope).
struct DecoderTraits {
  bool attention_bias = false;  // biases on the q/k/v projections (qwen2)
  bool qk_norm = false;         // RMSNorm over each head of q and k before rope (qwen3)
  // "neox" rotates the two halves of a head; "gptj" rotates interleaved pairs, which is what
  // llama-family GGUF files need since converters interleave the q/k rows.
  std::string rope_style = "neox";
  std::optional<int64_t> sliding_window;  // keys older than this many positions are masked
};

struct Architecture {
  std::string name;         // "llama"
  std::string description;  // one line for `flagstone run --help` and errors
  // config.json model_type values and GGUF general.architecture values served.
  std::vector<std::string> model_types;
  // Checks the configuration (kUnsupported naming the config key it cannot serve) and returns
  // the decoder switches.
  std::function<DecoderTraits(const ModelConfig&, WeightFormat)> traits;
};

// Adds an architecture; kInvalidArgument when one of its model types is already served.
void register_architecture(Architecture architecture);
// The architecture serving config.model_type; kUnsupported naming the type, the config file
// and the supported types.
const Architecture& architecture_for(const ModelConfig& config);
// Every registered architecture, in registration order.
std::vector<const Architecture*> architectures();

}  // namespace flagstone::engine
