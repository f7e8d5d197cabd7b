// Mistral: the llama block plus an optional sliding attention window.
#include "architectures.h"

namespace flagstone::engine::detail {

Architecture mistral_architecture() {
  Architecture arch;
  arch.name = "mistral";
  arch.description = "Mistral (sliding-window attention)";
  arch.model_types = {"mistral"};
  arch.traits = [](const ModelConfig& config, WeightFormat format) {
    DecoderTraits traits;
    traits.attention_bias = config.attention_bias;
    traits.rope_style = llama_rope_style(format);
    traits.sliding_window = config.sliding_window;
    return traits;
  };
  return arch;
}

}  // namespace flagstone::engine::detail
