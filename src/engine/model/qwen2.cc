// Qwen2 and Qwen2.5: biases on the q/k/v projections, half-split rope in every format.
#include "architectures.h"

namespace flagstone::engine::detail {

Architecture qwen2_architecture() {
  Architecture arch;
  arch.name = "qwen2";
  arch.description = "Qwen2/Qwen2.5 (q/k/v bias)";
  arch.model_types = {"qwen2"};
  arch.traits = [](const ModelConfig& config, WeightFormat) {
    // Qwen2's window applies only to some layers (max_window_layers); no released model
    // enables it, so refuse rather than compute something else.
    FS_CHECK(!config.sliding_window, kUnsupported, "config '", config.source,
             "': use_sliding_window is not supported for qwen2");
    DecoderTraits traits;
    traits.attention_bias = config.attention_bias;
    traits.rope_style = "neox";
    return traits;
  };
  return arch;
}

}  // namespace flagstone::engine::detail
