// Streaming detokenizer: decodes a short window of already-emitted tokens plus the new ones and
// emits the difference once it no longer ends in a replacement character. Decoding the window
// (instead of one token alone) keeps decoders such as Metaspace and Strip consistent.
#include "flagstone/engine/tokenizer/streaming_detokenizer.h"

#include <span>

namespace flagstone::engine {
namespace {
bool ends_with_replacement(const std::string& s) {
  return s.size() >= 3 && s.compare(s.size() - 3, 3, "\xEF\xBF\xBD") == 0;
}
}  // namespace

StreamingDetokenizer::StreamingDetokenizer(Tokenizer tokenizer, bool skip_special_tokens)
    : tokenizer_(std::move(tokenizer)), skip_special_(skip_special_tokens) {}

std::string StreamingDetokenizer::push(TokenId id) {
  ids_.push_back(id);
  std::span<const TokenId> all(ids_);
  std::string before = tokenizer_.decode(all.subspan(prefix_, read_ - prefix_), skip_special_);
  std::string now = tokenizer_.decode(all.subspan(prefix_), skip_special_);
  if (now.size() <= before.size() || ends_with_replacement(now) ||
      now.compare(0, before.size(), before) != 0) {
    // Either nothing new, or a character is still incomplete; wait for more tokens. A window
    // that grows past any sensible character length is emitted anyway.
    if (ids_.size() - read_ < 16 || now.size() <= before.size()) return {};
  }
  std::string delta = now.substr(std::min(before.size(), now.size()));
  prefix_ = read_;
  read_ = ids_.size();
  return delta;
}

std::string StreamingDetokenizer::flush() {
  std::span<const TokenId> all(ids_);
  std::string before = tokenizer_.decode(all.subspan(prefix_, read_ - prefix_), skip_special_);
  std::string now = tokenizer_.decode(all.subspan(prefix_), skip_special_);
  std::string delta = now.size() > before.size() ? now.substr(before.size()) : std::string();
  ids_.clear();
  prefix_ = read_ = 0;
  return delta;
}

}  // namespace flagstone::engine
