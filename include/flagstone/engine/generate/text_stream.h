// Incremental detokenization for streaming: emits only text that is final, holding back
// incomplete UTF-8 sequences and anything that could still grow into a stop string.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "flagstone/engine/tokenizer/tokenizer.h"

namespace flagstone::engine {

class TextStream {
 public:
  TextStream(const Tokenizer& tokenizer, std::vector<std::string> stop_strings,
             bool skip_special_tokens = true);

  // Adds a generated token; returns the text that became final (possibly empty).
  std::string push(TokenId id);
  // True once a stop string appeared; the text then ends right before it.
  bool stopped() const { return stopped_; }
  // The rest of the held-back text, at the end of generation (empty after a stop).
  std::string finish();
  // Everything emitted so far (excluding held-back text).
  const std::string& text() const { return text_; }

 private:
  std::string take(size_t end);
  const Tokenizer& tokenizer_;
  std::vector<std::string> stops_;
  bool skip_special_;
  std::vector<TokenId> ids_;
  std::string text_;
  bool stopped_ = false;
};

}  // namespace flagstone::engine
