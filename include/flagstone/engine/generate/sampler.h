// Token selection from logits on the model's device: greedy, temperature, top-k, top-p, min-p
// and repetition penalty, with a seeded counter-based stream so runs repeat exactly.
#pragma once

#include <cstdint>
#include <vector>

#include "flagstone/runtime/tensor.h"

namespace flagstone::engine {

struct SamplingOptions {
  double temperature = 0.0;  // 0: greedy (the first maximum)
  int64_t top_k = 0;         // 0: off
  double top_p = 1.0;        // 1: off
  double min_p = 0.0;        // 0: off
  // Hugging Face's rule: logits of tokens already seen are divided by the penalty when
  // positive and multiplied by it when negative. 1: off.
  double repetition_penalty = 1.0;
  uint64_t seed = 0;

  // kInvalidArgument naming the option out of range.
  void validate() const;
};

class Sampler {
 public:
  explicit Sampler(SamplingOptions options = {});
  const SamplingOptions& options() const { return options_; }

  // One token per row of `logits` [batch, vocab] (any float dtype and device); `seen[r]` lists
  // the ids row r has seen (prompt and output) for the repetition penalty. Each call draws
  // from the next offset of the seeded stream.
  std::vector<int64_t> sample(const Tensor& logits, const std::vector<std::vector<int32_t>>& seen);
  // The same draw left on the logits' device: i64 [batch], ready to feed the next forward pass
  // without a round trip through the host.
  Tensor sample_on_device(const Tensor& logits, const std::vector<std::vector<int32_t>>& seen);
  // Applies only the repetition penalty (exposed for tests).
  Tensor penalize(const Tensor& logits, const std::vector<std::vector<int32_t>>& seen) const;
  // Starts the random stream over (same seed).
  void reset() { step_ = 0; }

 private:
  SamplingOptions options_;
  uint64_t step_ = 0;
};

}  // namespace flagstone::engine
