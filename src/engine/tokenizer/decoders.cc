// Decoders of tokenizer.json: ByteLevel, ByteFallback, Fuse, Replace, Strip, Metaspace, Sequence.
#include "flagstone/base/error.h"
#include "pipeline.h"
#include "regex.h"
#include "utf8.h"

namespace flagstone::engine::tok {
namespace {

const char kMetaspace[] = "\xE2\x96\x81";

class ByteLevelDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string bytes;
    for (const auto& t : tokens) {
      // A token with a character outside the byte alphabet (an added token such as
      // "<|im_start|>" is fine, but e.g. a CJK added token is not) is kept as its UTF-8.
      std::string mapped;
      bool ok = true;
      for (std::size_t i = 0; i < t.size();) {
        std::size_t n = 0;
        int b = unicode_to_byte(decode_utf8(t, i, &n));
        if (b < 0 || valid_utf8_length(t, i) == 0) {
          ok = false;
          break;
        }
        mapped.push_back(static_cast<char>(b));
        i += n;
      }
      bytes += ok ? mapped : t;
    }
    tokens.assign(1, utf8_lossy(bytes));
  }
};

class ByteFallbackDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    std::string pending;
    std::size_t pending_count = 0;
    auto flush = [&] {
      if (pending_count == 0) return;
      if (is_valid_utf8(pending)) {
        out.push_back(pending);
      } else {
        // HF emits one replacement character per byte token of an invalid run.
        for (std::size_t i = 0; i < pending_count; ++i) out.emplace_back("\xEF\xBF\xBD");
      }
      pending.clear();
      pending_count = 0;
    };
    for (auto& t : tokens) {
      int byte = parse_byte_token(t);
      if (byte >= 0) {
        pending.push_back(static_cast<char>(byte));
        ++pending_count;
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    tokens = std::move(out);
  }

 private:
  static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  }
  static int parse_byte_token(const std::string& t) {
    if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
    int hi = hex(t[3]), lo = hex(t[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
  }
};

class FuseDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const auto& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
};

class ReplaceDecoder final : public Decoder {
 public:
  ReplaceDecoder(std::string literal, std::unique_ptr<Regex> regex, std::string content)
      : literal_(std::move(literal)), regex_(std::move(regex)), content_(std::move(content)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (auto& t : tokens) {
      std::vector<std::pair<std::size_t, std::size_t>> found;
      if (regex_) {
        found = regex_->find_all(t);
      } else if (!literal_.empty()) {
        for (std::size_t p = t.find(literal_); p != std::string::npos;
             p = t.find(literal_, p + literal_.size()))
          found.emplace_back(p, p + literal_.size());
      }
      if (found.empty()) continue;
      std::string out;
      std::size_t last = 0;
      for (auto [b, e] : found) {
        out.append(t, last, b - last);
        out += content_;
        last = e;
      }
      out.append(t, last, std::string::npos);
      t = std::move(out);
    }
  }

 private:
  std::string literal_;
  std::unique_ptr<Regex> regex_;
  std::string content_;
};

// Removes up to `start` leading and `stop` trailing copies of one character from each token.
class StripDecoder final : public Decoder {
 public:
  StripDecoder(std::string content, std::size_t start, std::size_t stop)
      : content_(std::move(content)), start_(start), stop_(stop) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    if (content_.empty()) return;
    for (auto& t : tokens) {
      std::size_t b = 0, e = t.size();
      for (std::size_t i = 0; i < start_ && t.compare(b, content_.size(), content_) == 0; ++i)
        b += content_.size();
      for (std::size_t i = 0; i < stop_ && e >= b + content_.size() &&
                              t.compare(e - content_.size(), content_.size(), content_) == 0;
           ++i)
        e -= content_.size();
      t = t.substr(b, e - b);
    }
  }

 private:
  std::string content_;
  std::size_t start_, stop_;
};

class MetaspaceDecoder final : public Decoder {
 public:
  MetaspaceDecoder(std::string replacement, bool strip_first)
      : replacement_(std::move(replacement)), strip_first_(strip_first) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      std::string out;
      const std::string& t = tokens[i];
      for (std::size_t p = 0; p < t.size();) {
        if (!replacement_.empty() && t.compare(p, replacement_.size(), replacement_) == 0) {
          out.push_back(' ');
          p += replacement_.size();
        } else {
          out.push_back(t[p++]);
        }
      }
      if (i == 0 && strip_first_ && !out.empty() && out[0] == ' ') out.erase(0, 1);
      tokens[i] = std::move(out);
    }
  }

 private:
  std::string replacement_;
  bool strip_first_;
};

class SequenceDecoder final : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> items)
      : items_(std::move(items)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (const auto& d : items_) d->decode_chain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> items_;
};

std::size_t json_count(const nlohmann::json& j, const char* key, const std::string& where) {
  const auto& v = json_field(j, key, where);
  FS_CHECK(v.is_number_unsigned() || (v.is_number_integer() && v.get<long long>() >= 0), kFormat,
           where, ": field \"", key, "\" must be a non-negative integer");
  return v.get<std::size_t>();
}

}  // namespace

std::unique_ptr<Decoder> make_decoder(const nlohmann::json& j, const std::string& where) {
  if (j.is_null()) return nullptr;
  std::string type = json_string(j, "type", where);
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Replace") {
    auto [literal, regex] = parse_pattern(j, where + ".Replace");
    return std::make_unique<ReplaceDecoder>(std::move(literal), std::move(regex),
                                            json_string(j, "content", where + ".Replace"));
  }
  if (type == "Strip")
    return std::make_unique<StripDecoder>(json_string(j, "content", where),
                                          json_count(j, "start", where),
                                          json_count(j, "stop", where));
  if (type == "Metaspace") {
    std::string replacement =
        j.contains("replacement") ? json_string(j, "replacement", where) : std::string(kMetaspace);
    bool strip = true;
    if (j.contains("prepend_scheme") && j["prepend_scheme"].is_string())
      strip = j["prepend_scheme"].get<std::string>() != "never";
    else
      strip = json_bool(j, "add_prefix_space", true, where);
    return std::make_unique<MetaspaceDecoder>(replacement, strip);
  }
  if (type == "Sequence") {
    const auto& list = json_field(j, "decoders", where);
    FS_CHECK(list.is_array(), kFormat, where, ".decoders must be an array");
    std::vector<std::unique_ptr<Decoder>> items;
    for (std::size_t i = 0; i < list.size(); ++i) {
      auto d = make_decoder(list[i], where + ".decoders[" + std::to_string(i) + "]");
      if (d) items.push_back(std::move(d));
    }
    return std::make_unique<SequenceDecoder>(std::move(items));
  }
  throw_error(ErrorCategory::kUnsupported, where, ": decoder type \"", type,
              "\" is not supported (supported: ByteLevel, ByteFallback, Fuse, Replace, Strip, ",
              "Metaspace, Sequence)");
}

std::unique_ptr<Decoder> make_spm_decoder(bool strip_leading_space) {
  std::vector<std::unique_ptr<Decoder>> items;
  items.push_back(std::make_unique<ReplaceDecoder>(kMetaspace, nullptr, " "));
  items.push_back(std::make_unique<ByteFallbackDecoder>());
  items.push_back(std::make_unique<FuseDecoder>());
  if (strip_leading_space) items.push_back(std::make_unique<StripDecoder>(" ", 1, 0));
  return std::make_unique<SequenceDecoder>(std::move(items));
}

std::unique_ptr<Decoder> make_byte_level_decoder() {
  return std::make_unique<ByteLevelDecoder>();
}

}  // namespace flagstone::engine::tok
