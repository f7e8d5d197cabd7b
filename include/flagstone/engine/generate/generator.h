// Text generation over one model and KV cache: prefill the prompt in one batch (reusing the
// cached prefix of an ongoing conversation), then decode token by token with streaming.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "flagstone/engine/generate/sampler.h"
#include "flagstone/engine/model/model.h"
#include "flagstone/engine/tokenizer/tokenizer.h"

namespace flagstone::engine {

struct GenerationOptions {
  int64_t max_new_tokens = 256;
  SamplingOptions sampling;
  // Ids that end generation (EOS, end of turn); the id is returned but not turned into text.
  std::vector<TokenId> stop_ids;
  // Texts that end generation; the result's text ends right before the first one. Needs a
  // tokenizer.
  std::vector<std::string> stop_strings;
};

struct GenerationStats {
  int64_t prompt_tokens = 0;  // tokens of the prompt
  int64_t reused_tokens = 0;  // of those, found in the KV cache from an earlier call
  int64_t generated_tokens = 0;
  double prefill_seconds = 0;  // prompt forward pass and first token (time to first token)
  double decode_seconds = 0;   // the other generated_tokens - 1 tokens
};

struct GenerationResult {
  std::vector<TokenId> tokens;  // generated ids, including a final stop id
  std::string text;             // their text (needs a tokenizer), cut before a stop string
  // "eos" (a stop id), "stop" (a stop string), "length" (max_new_tokens), "context" (the KV
  // cache is full) or "cancelled" (the callback returned false).
  std::string finish_reason;
  GenerationStats stats;
};

struct StreamEvent {
  // The generated id, or -1 for the last event, which flushes text held back at the end.
  TokenId token;
  std::string_view text;  // text that became final with this token (often empty)
};
// Called once per generated token; returning false stops generation ("cancelled").
using StreamCallback = std::function<bool(const StreamEvent&)>;

class Generator {
 public:
  // `tokenizer` may be null (ids only: no text, no stop strings); it must outlive the
  // generator, as must `model`. `context`: KV cache positions (0: the model's max_context).
  explicit Generator(Model& model, const Tokenizer* tokenizer = nullptr, int64_t context = 0);

  GenerationResult generate(const std::vector<TokenId>& prompt, const GenerationOptions& options,
                            const StreamCallback& on_token = {});
  // Forgets the cached conversation.
  void reset();
  // The ids whose keys and values the cache holds.
  const std::vector<TokenId>& cached_tokens() const { return cached_; }
  int64_t context() const { return cache_.capacity(); }

 private:
  Model& model_;
  const Tokenizer* tokenizer_;
  KvCache cache_;
  std::vector<TokenId> cached_;
};

}  // namespace flagstone::engine
