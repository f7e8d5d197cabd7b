// Qwen3 (dense): RMSNorm over each q and k head before rope; head_dim set independently of
// hidden_size / heads.
#include "architectures.h"

namespace flagstone::engine::detail {

Architecture qwen3_architecture() {
  Architecture arch;
  arch.name = "qwen3";
  arch.description = "Qwen3 dense (q/k norm)";
  arch.model_types = {"qwen3"};
  arch.traits = [](const ModelConfig& config, WeightFormat) {
    FS_CHECK(!config.sliding_window, kUnsupported, "config '", config.source,
             "': use_sliding_window is not supported for qwen3");
    DecoderTraits traits;
    traits.attention_bias = config.attention_bias;
    traits.qk_norm = true;
    traits.rope_style = "neox";
    return traits;
  };
  return arch;
}

}  // namespace flagstone::engine::detail
