// Pre-tokenizers of tokenizer.json: Split (PCRE2), ByteLevel, Digits, Metaspace, Sequence.
#include <utf8proc.h>

#include "flagstone/base/error.h"
#include "pipeline.h"
#include "regex.h"
#include "utf8.h"

namespace flagstone::engine::tok {
namespace {

const char kMetaspace[] = "\xE2\x96\x81";  // U+2581, SentencePiece's visible space

enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

Behavior parse_behavior(const std::string& name, const std::string& where) {
  if (name == "Removed") return Behavior::kRemoved;
  if (name == "Isolated") return Behavior::kIsolated;
  if (name == "MergedWithPrevious") return Behavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return Behavior::kMergedWithNext;
  if (name == "Contiguous") return Behavior::kContiguous;
  throw_error(ErrorCategory::kFormat, where, ": unknown split behavior \"", name, "\"");
}

// Cuts `piece` at the given matches according to `behavior`, as HF's NormalizedString::split.
void split_piece(const Piece& piece, const std::vector<std::pair<std::size_t, std::size_t>>& found,
                 Behavior behavior, bool invert, std::vector<Piece>& out) {
  const std::string& s = piece.text;
  // Segments covering the text: (begin, end, is_delimiter).
  struct Seg {
    std::size_t b, e;
    bool match;
  };
  std::vector<Seg> segs;
  std::size_t last = 0;
  for (auto [b, e] : found) {
    if (b > last) segs.push_back({last, b, invert});
    segs.push_back({b, e, !invert});
    last = e;
  }
  if (last < s.size()) segs.push_back({last, s.size(), invert});

  std::vector<std::pair<std::size_t, std::size_t>> spans;
  switch (behavior) {
    case Behavior::kRemoved:
      for (const auto& g : segs)
        if (!g.match) spans.emplace_back(g.b, g.e);
      break;
    case Behavior::kIsolated:
      for (const auto& g : segs) spans.emplace_back(g.b, g.e);
      break;
    case Behavior::kContiguous:
      for (std::size_t i = 0; i < segs.size(); ++i) {
        if (segs[i].match && !spans.empty() && i > 0 && segs[i - 1].match)
          spans.back().second = segs[i].e;
        else
          spans.emplace_back(segs[i].b, segs[i].e);
      }
      break;
    case Behavior::kMergedWithPrevious:
      for (std::size_t i = 0; i < segs.size(); ++i) {
        if (segs[i].match && !spans.empty() && !segs[i - 1].match)
          spans.back().second = segs[i].e;
        else
          spans.emplace_back(segs[i].b, segs[i].e);
      }
      break;
    case Behavior::kMergedWithNext: {
      bool pending = false;  // the last span is a delimiter waiting for what follows
      for (const auto& g : segs) {
        if (pending && !g.match) {
          spans.back().second = g.e;
          pending = false;
        } else {
          spans.emplace_back(g.b, g.e);
          pending = g.match;
        }
      }
      break;
    }
  }
  for (auto [b, e] : spans) {
    if (e <= b) continue;
    out.push_back({s.substr(b, e - b), piece.at_start && b == 0});
  }
}

class SplitPreTokenizer final : public PreTokenizer {
 public:
  SplitPreTokenizer(std::string literal, std::unique_ptr<Regex> regex, Behavior behavior,
                    bool invert)
      : literal_(std::move(literal)),
        regex_(std::move(regex)),
        behavior_(behavior),
        invert_(invert) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    out.reserve(pieces.size() * 4);
    for (const auto& p : pieces) split_piece(p, find(p.text), behavior_, invert_, out);
    pieces = std::move(out);
  }

 private:
  std::vector<std::pair<std::size_t, std::size_t>> find(const std::string& s) const {
    if (regex_) return regex_->find_all(s);
    std::vector<std::pair<std::size_t, std::size_t>> found;
    if (literal_.empty()) return found;
    for (std::size_t pos = s.find(literal_); pos != std::string::npos;
         pos = s.find(literal_, pos + literal_.size()))
      found.emplace_back(pos, pos + literal_.size());
    return found;
  }

  std::string literal_;
  std::unique_ptr<Regex> regex_;
  Behavior behavior_;
  bool invert_;
};

class ByteLevelPreTokenizer final : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex)
      : add_prefix_space_(add_prefix_space),
        regex_(use_regex ? std::make_unique<Regex>(kGpt2Pattern, "pre_tokenizer ByteLevel")
                         : nullptr) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    std::vector<Piece> split;
    for (auto& p : pieces) {
      if (add_prefix_space_ && (p.text.empty() || p.text[0] != ' ')) p.text = " " + p.text;
      if (regex_)
        split_piece(p, regex_->find_all(p.text), Behavior::kIsolated, false, split);
      else
        split.push_back(std::move(p));
    }
    for (auto& p : split) p.text = byte_level_encode(p.text);
    pieces = std::move(split);
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> regex_;
};

class DigitsPreTokenizer final : public PreTokenizer {
 public:
  explicit DigitsPreTokenizer(bool individual) : individual_(individual) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    for (const auto& p : pieces) {
      std::vector<std::pair<std::size_t, std::size_t>> found;
      for (std::size_t i = 0; i < p.text.size();) {
        std::size_t n = 0;
        char32_t cp = decode_utf8(p.text, i, &n);
        if (is_numeric(cp)) found.emplace_back(i, i + n);
        i += n;
      }
      split_piece(p, found, individual_ ? Behavior::kIsolated : Behavior::kContiguous, false, out);
    }
    pieces = std::move(out);
  }

 private:
  static bool is_numeric(char32_t cp);
  bool individual_;
};

class MetaspacePreTokenizer final : public PreTokenizer {
 public:
  enum class Prepend { kAlways, kFirst, kNever };
  MetaspacePreTokenizer(std::string replacement, Prepend prepend, bool split)
      : replacement_(std::move(replacement)), prepend_(prepend), split_(split) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    for (auto& p : pieces) {
      std::string text;
      text.reserve(p.text.size() + 3);
      for (char c : p.text) {
        if (c == ' ')
          text += replacement_;
        else
          text.push_back(c);
      }
      bool needs_prefix = text.compare(0, replacement_.size(), replacement_) != 0;
      if (needs_prefix &&
          (prepend_ == Prepend::kAlways || (prepend_ == Prepend::kFirst && p.at_start)))
        text = replacement_ + text;
      Piece q{std::move(text), p.at_start};
      if (!split_) {
        out.push_back(std::move(q));
        continue;
      }
      std::vector<std::pair<std::size_t, std::size_t>> found;
      for (std::size_t pos = q.text.find(replacement_); pos != std::string::npos;
           pos = q.text.find(replacement_, pos + replacement_.size()))
        found.emplace_back(pos, pos + replacement_.size());
      split_piece(q, found, Behavior::kMergedWithNext, false, out);
    }
    pieces = std::move(out);
  }

 private:
  std::string replacement_;
  Prepend prepend_;
  bool split_;
};

class SequencePreTokenizer final : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> items)
      : items_(std::move(items)) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for (const auto& p : items_) p->pre_tokenize(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> items_;
};

bool DigitsPreTokenizer::is_numeric(char32_t cp) {
  if (cp < 0x80) return cp >= '0' && cp <= '9';
  // Nd, Nl and No, as Rust's char::is_numeric that HF uses.
  auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
  return cat == UTF8PROC_CATEGORY_ND || cat == UTF8PROC_CATEGORY_NL || cat == UTF8PROC_CATEGORY_NO;
}

}  // namespace

MetaspacePreTokenizer::Prepend parse_prepend_scheme(const nlohmann::json& j,
                                                    const std::string& where) {
  auto it = j.find("prepend_scheme");
  if (it != j.end() && it->is_string()) {
    auto s = it->get<std::string>();
    if (s == "always") return MetaspacePreTokenizer::Prepend::kAlways;
    if (s == "first") return MetaspacePreTokenizer::Prepend::kFirst;
    if (s == "never") return MetaspacePreTokenizer::Prepend::kNever;
    throw_error(ErrorCategory::kFormat, where, ": unknown prepend_scheme \"", s, "\"");
  }
  // Files written before prepend_scheme existed carry add_prefix_space instead.
  return json_bool(j, "add_prefix_space", true, where) ? MetaspacePreTokenizer::Prepend::kAlways
                                                       : MetaspacePreTokenizer::Prepend::kNever;
}

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& j,
                                                 const std::string& where) {
  if (j.is_null()) return nullptr;
  std::string type = json_string(j, "type", where);
  if (type == "Split") {
    auto [literal, regex] = parse_pattern(j, where + ".Split");
    return std::make_unique<SplitPreTokenizer>(
        std::move(literal), std::move(regex),
        parse_behavior(json_string(j, "behavior", where), where),
        json_bool(j, "invert", false, where));
  }
  if (type == "ByteLevel")
    return std::make_unique<ByteLevelPreTokenizer>(json_bool(j, "add_prefix_space", false, where),
                                                   json_bool(j, "use_regex", true, where));
  if (type == "Digits")
    return std::make_unique<DigitsPreTokenizer>(json_bool(j, "individual_digits", false, where));
  if (type == "Metaspace") {
    std::string replacement =
        j.contains("replacement") ? json_string(j, "replacement", where) : std::string(kMetaspace);
    return std::make_unique<MetaspacePreTokenizer>(replacement, parse_prepend_scheme(j, where),
                                                   json_bool(j, "split", true, where));
  }
  if (type == "Sequence") {
    const auto& list = json_field(j, "pretokenizers", where);
    FS_CHECK(list.is_array(), kFormat, where, ".pretokenizers must be an array");
    std::vector<std::unique_ptr<PreTokenizer>> items;
    for (std::size_t i = 0; i < list.size(); ++i) {
      auto p = make_pre_tokenizer(list[i], where + ".pretokenizers[" + std::to_string(i) + "]");
      if (p) items.push_back(std::move(p));
    }
    return std::make_unique<SequencePreTokenizer>(std::move(items));
  }
  throw_error(ErrorCategory::kUnsupported, where, ": pre-tokenizer type \"", type,
              "\" is not supported (supported: Split, ByteLevel, Digits, Metaspace, Sequence)");
}

std::unique_ptr<PreTokenizer> make_byte_level_split(std::string_view pattern) {
  std::vector<std::unique_ptr<PreTokenizer>> items;
  items.push_back(std::make_unique<SplitPreTokenizer>(
      "", std::make_unique<Regex>(pattern, "GGUF pre-tokenizer"), Behavior::kIsolated, false));
  items.push_back(std::make_unique<ByteLevelPreTokenizer>(false, false));
  return std::make_unique<SequencePreTokenizer>(std::move(items));
}

}  // namespace flagstone::engine::tok
