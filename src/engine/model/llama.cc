// Llama 2, 3, 3.1 and 3.2: GQA, plain or llama3-scaled rope, optional tied embeddings.
#include "architectures.h"

namespace flagstone::engine::detail {

Architecture llama_architecture() {
  Architecture arch;
  arch.name = "llama";
  arch.description = "Llama 2/3/3.1/3.2 (llama3 rope scaling, tied embeddings)";
  arch.model_types = {"llama"};
  arch.traits = [](const ModelConfig& config, WeightFormat format) {
    DecoderTraits traits;
    traits.attention_bias = config.attention_bias;
    traits.rope_style = llama_rope_style(format);
    return traits;
  };
  return arch;
}

}  // namespace flagstone::engine::detail
