// Incremental decoding for generation: feed token ids one at a time and get back only text that
// is final, never a split multi-byte UTF-8 character or a half-decoded byte-fallback sequence.
#pragma once

#include <string>
#include <vector>

#include "flagstone/engine/tokenizer/tokenizer.h"

namespace flagstone::engine {

class StreamingDetokenizer {
 public:
  explicit StreamingDetokenizer(Tokenizer tokenizer, bool skip_special_tokens = true);

  // Adds one generated id; returns the text it completes (often empty while a character is
  // still incomplete). The concatenation of all returns plus flush() equals
  // decode(all ids) whenever that decode does not depend on where it starts.
  std::string push(TokenId id);
  // Returns whatever is still held back (an incomplete character decodes as U+FFFD, as decode
  // does) and starts over.
  std::string flush();
  const std::vector<TokenId>& ids() const { return ids_; }

 private:
  Tokenizer tokenizer_;
  bool skip_special_;
  std::vector<TokenId> ids_;
  // Tokens [prefix_, read_) were decoded and emitted; they give the context for the next ones.
  std::size_t prefix_ = 0;
  std::size_t read_ = 0;
};

}  // namespace flagstone::engine
