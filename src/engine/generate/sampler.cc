// Sampling through the ops library, so the logits never leave the device: the penalty is a
// gather/where/scatter over the seen ids and the draw is the `sample` op.
#include "flagstone/engine/generate/sampler.h"

#include <algorithm>
#include <cmath>

#include "flagstone/ops/ops.h"

namespace flagstone::engine {

void SamplingOptions::validate() const {
  FS_CHECK(std::isfinite(temperature) && temperature >= 0, kInvalidArgument, "temperature ",
           temperature, " must be >= 0 (0 is greedy)");
  FS_CHECK(top_k >= 0, kInvalidArgument, "top_k ", top_k, " must be >= 0 (0 turns it off)");
  FS_CHECK(top_p > 0 && top_p <= 1, kInvalidArgument, "top_p ", top_p, " must be in (0, 1]");
  FS_CHECK(min_p >= 0 && min_p <= 1, kInvalidArgument, "min_p ", min_p, " must be in [0, 1]");
  FS_CHECK(std::isfinite(repetition_penalty) && repetition_penalty > 0, kInvalidArgument,
           "repetition_penalty ", repetition_penalty, " must be > 0 (1 turns it off)");
}

Sampler::Sampler(SamplingOptions options) : options_(options) {
  options_.validate();
}

Tensor Sampler::penalize(const Tensor& logits,
                         const std::vector<std::vector<int32_t>>& seen) const {
  if (options_.repetition_penalty == 1.0) return logits;
  const int64_t rows = logits.size(0), vocab = logits.size(1);
  FS_CHECK(static_cast<int64_t>(seen.size()) == rows, kInvalidArgument, "sampler: ", seen.size(),
           " histories for ", rows, " rows of logits");
  std::vector<std::vector<int64_t>> unique(static_cast<size_t>(rows));
  size_t width = 0;
  for (int64_t r = 0; r < rows; ++r) {
    for (int32_t id : seen[r]) {
      FS_CHECK(id >= 0 && id < vocab, kInvalidArgument, "sampler: token id ", id,
               " is outside the vocabulary of ", vocab);
      unique[r].push_back(id);
    }
    std::sort(unique[r].begin(), unique[r].end());
    unique[r].erase(std::unique(unique[r].begin(), unique[r].end()), unique[r].end());
    width = std::max(width, unique[r].size());
  }
  if (width == 0) return logits;
  // Rows are padded by repeating an id: scattering the same penalized value twice is harmless.
  std::vector<int64_t> index;
  std::vector<uint8_t> valid;
  for (int64_t r = 0; r < rows; ++r) {
    for (size_t j = 0; j < width; ++j) {
      bool has = j < unique[r].size();
      index.push_back(has ? unique[r][j] : (unique[r].empty() ? 0 : unique[r][0]));
      valid.push_back(has || !unique[r].empty());
    }
  }
  const Shape shape{rows, static_cast<int64_t>(width)};
  Tensor idx = Tensor::from_vector(index, shape, logits.device());
  Tensor picked = ops::gather(logits, 1, idx);
  Tensor penalty = ops::scalar_like(picked, options_.repetition_penalty);
  Tensor changed = ops::where(ops::lt(picked, ops::scalar_like(picked, 0.0)),
                              ops::mul(picked, penalty), ops::div(picked, penalty));
  // A row with no history keeps its logit at index 0.
  Tensor keep = Tensor::from_host(valid.data(), valid.size(), shape, DType::kBool, logits.device());
  changed = ops::where(keep, changed, picked);
  return ops::scatter(logits, 1, idx, changed);
}

std::vector<int64_t> Sampler::sample(const Tensor& logits,
                                     const std::vector<std::vector<int32_t>>& seen) {
  return sample_on_device(logits, seen).to_vector<int64_t>();
}

Tensor Sampler::sample_on_device(const Tensor& logits,
                                 const std::vector<std::vector<int32_t>>& seen) {
  FS_CHECK(logits.dim() == 2, kInvalidArgument, "sampler: logits ", logits.describe(),
           " must be [batch, vocab]");
  Tensor scores = penalize(logits, seen);
  ops::SamplingParams params;
  params.temperature = options_.temperature;
  params.top_k = options_.top_k;
  params.top_p = options_.top_p;
  params.min_p = options_.min_p;
  params.seed = options_.seed;
  params.offset = step_++;
  return ops::sample(scores, params);
}

}  // namespace flagstone::engine
