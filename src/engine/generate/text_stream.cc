// Decodes the whole generated sequence on every token: tokenizers merge bytes and strip spaces
// across token boundaries, so only the full decode is exactly what a final decode would give.
#include "flagstone/engine/generate/text_stream.h"

#include <algorithm>
#include <span>

namespace flagstone::engine {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD: an incomplete sequence

}  // namespace

TextStream::TextStream(const Tokenizer& tokenizer, std::vector<std::string> stop_strings,
                       bool skip_special_tokens)
    : tokenizer_(tokenizer), stops_(std::move(stop_strings)), skip_special_(skip_special_tokens) {
  stops_.erase(std::remove(stops_.begin(), stops_.end(), std::string()), stops_.end());
}

std::string TextStream::take(size_t end) {
  std::string full = tokenizer_.decode(std::span<const TokenId>(ids_), skip_special_);
  end = std::min(end, full.size());
  if (end <= text_.size()) return {};
  std::string piece = full.substr(text_.size(), end - text_.size());
  text_ += piece;
  return piece;
}

std::string TextStream::push(TokenId id) {
  if (stopped_) return {};
  ids_.push_back(id);
  std::string full = tokenizer_.decode(std::span<const TokenId>(ids_), skip_special_);
  // The decode of a longer sequence normally extends the shorter one; if it rewrote emitted
  // text (a tokenizer quirk) emit nothing more until it agrees again.
  if (full.compare(0, text_.size(), text_) != 0) return {};
  size_t first_stop = std::string::npos;
  for (const std::string& stop : stops_) {
    size_t from = text_.size() >= stop.size() ? text_.size() - stop.size() + 1 : 0;
    size_t at = full.find(stop, from);
    if (at != std::string::npos) first_stop = std::min(first_stop, at);
  }
  if (first_stop != std::string::npos) {
    stopped_ = true;
    std::string piece =
        first_stop > text_.size() ? full.substr(text_.size(), first_stop - text_.size()) : "";
    text_ += piece;
    return piece;
  }
  size_t end = full.size();
  while (end >= text_.size() + kReplacement.size() &&
         std::string_view(full).substr(end - kReplacement.size(), kReplacement.size()) ==
             kReplacement)
    end -= kReplacement.size();
  // Hold back the longest tail that a stop string starts with.
  size_t hold = 0;
  for (const std::string& stop : stops_) {
    for (size_t n = std::min(stop.size() - 1, end - text_.size()); n > hold; --n) {
      if (std::string_view(full).substr(end - n, n) == std::string_view(stop).substr(0, n)) {
        hold = n;
        break;
      }
    }
  }
  end -= hold;
  if (end <= text_.size()) return {};
  std::string piece = full.substr(text_.size(), end - text_.size());
  text_ += piece;
  return piece;
}

std::string TextStream::finish() {
  if (stopped_) return {};
  return take(std::string::npos);
}

}  // namespace flagstone::engine
