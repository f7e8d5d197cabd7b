// The decode loop: one forward pass per generated token over the growing KV cache, with the
// prompt prefilled as one batch and the cached prefix of earlier turns reused.
#include "flagstone/engine/generate/generator.h"

#include <algorithm>
#include <chrono>
#include <memory>

#include "flagstone/engine/generate/text_stream.h"

namespace flagstone::engine {
namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

Tensor token_tensor(const TokenId* ids, int64_t count) {
  std::vector<int64_t> values(ids, ids + count);
  return Tensor::from_vector(values, {1, count});
}

}  // namespace

Generator::Generator(Model& model, const Tokenizer* tokenizer, int64_t context)
    : model_(model), tokenizer_(tokenizer), cache_(model.new_cache(1, context)) {}

void Generator::reset() {
  cache_.clear();
  cached_.clear();
}

GenerationResult Generator::generate(const std::vector<TokenId>& prompt,
                                     const GenerationOptions& options,
                                     const StreamCallback& on_token) {
  FS_CHECK(!prompt.empty(), kInvalidArgument, "generate: the prompt has no tokens");
  FS_CHECK(options.max_new_tokens >= 0, kInvalidArgument, "generate: max_new_tokens ",
           options.max_new_tokens, " must be >= 0");
  FS_CHECK(tokenizer_ || options.stop_strings.empty(), kInvalidArgument,
           "generate: stop strings need a tokenizer");
  const int64_t vocab = model_.config().vocab_size;
  for (TokenId id : prompt) {
    FS_CHECK(id >= 0 && id < vocab, kInvalidArgument, "generate: prompt token ", id,
             " is outside the model's vocabulary of ", vocab);
  }
  FS_CHECK(static_cast<int64_t>(prompt.size()) < cache_.capacity(), kInvalidArgument,
           "generate: the prompt of ", prompt.size(), " tokens does not fit the context of ",
           cache_.capacity(), " (use a larger context or a shorter prompt)");
  Sampler sampler(options.sampling);
  GenerationResult result;
  result.stats.prompt_tokens = static_cast<int64_t>(prompt.size());

  // Reuse the longest cached prefix, keeping at least one prompt token to produce logits.
  size_t common = 0;
  while (common < cached_.size() && common < prompt.size() && cached_[common] == prompt[common])
    ++common;
  common = std::min(common, prompt.size() - 1);
  cache_.truncate(static_cast<int64_t>(common));
  cached_.resize(common);
  result.stats.reused_tokens = static_cast<int64_t>(common);

  auto start = std::chrono::steady_clock::now();
  int64_t fresh = static_cast<int64_t>(prompt.size() - common);
  Tensor logits = model_.forward(token_tensor(prompt.data() + common, fresh), cache_);
  cached_.insert(cached_.end(), prompt.begin() + static_cast<std::ptrdiff_t>(common), prompt.end());
  std::vector<std::vector<int32_t>> seen{prompt};

  std::unique_ptr<TextStream> stream;
  if (tokenizer_) stream = std::make_unique<TextStream>(*tokenizer_, options.stop_strings);
  auto decode_start = std::chrono::steady_clock::now();
  if (options.max_new_tokens == 0) result.stats.prefill_seconds = seconds_since(start);
  result.finish_reason = "length";
  for (int64_t step = 0; step < options.max_new_tokens; ++step) {
    // The token stays on the device for the next step; its copy to the host (for stop checks
    // and text) is the one synchronization of a decode step.
    Tensor next = sampler.sample_on_device(logits.select(1, 0), seen);
    auto id = static_cast<TokenId>(next.to_vector<int64_t>()[0]);
    if (step == 0) {
      // Time to the first token; decoding is timed from here over the remaining tokens.
      result.stats.prefill_seconds = seconds_since(start);
      decode_start = std::chrono::steady_clock::now();
    }
    result.tokens.push_back(id);
    seen[0].push_back(id);
    bool is_stop =
        std::find(options.stop_ids.begin(), options.stop_ids.end(), id) != options.stop_ids.end();
    std::string piece;
    if (stream && !is_stop) piece = stream->push(id);
    result.text += piece;
    if (on_token && !on_token(StreamEvent{id, piece})) {
      result.finish_reason = "cancelled";
      break;
    }
    if (is_stop) {
      result.finish_reason = "eos";
      break;
    }
    if (stream && stream->stopped()) {
      result.finish_reason = "stop";
      break;
    }
    if (step + 1 == options.max_new_tokens) break;
    if (cache_.length() >= cache_.capacity()) {
      result.finish_reason = "context";
      break;
    }
    logits = model_.forward(next.reshape({1, 1}), cache_);
    cached_.push_back(id);
  }
  if (stream && result.finish_reason != "stop") {
    std::string tail = stream->finish();
    result.text += tail;
    if (on_token && !tail.empty()) on_token(StreamEvent{-1, tail});
  }
  result.stats.generated_tokens = static_cast<int64_t>(result.tokens.size());
  if (result.tokens.size() > 1) result.stats.decode_seconds = seconds_since(decode_start);
  return result;
}

}  // namespace flagstone::engine
