// Normalizers of tokenizer.json (NFC and its siblings, Replace, Prepend, Sequence) and the JSON
// field accessors shared by the stage builders.
#include <utf8proc.h>

#include <cstdlib>

#include "flagstone/base/error.h"
#include "pipeline.h"
#include "regex.h"
#include "utf8.h"

namespace flagstone::engine::tok {

const nlohmann::json& json_field(const nlohmann::json& j, const char* key,
                                 const std::string& where) {
  FS_CHECK(j.is_object(), kFormat, where, ": expected a JSON object");
  auto it = j.find(key);
  FS_CHECK(it != j.end(), kFormat, where, ": missing field \"", key, "\"");
  return *it;
}

std::string json_string(const nlohmann::json& j, const char* key, const std::string& where) {
  const auto& v = json_field(j, key, where);
  FS_CHECK(v.is_string(), kFormat, where, ": field \"", key, "\" must be a string");
  return v.get<std::string>();
}

bool json_bool(const nlohmann::json& j, const char* key, bool fallback, const std::string& where) {
  if (!j.is_object()) return fallback;
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  FS_CHECK(it->is_boolean(), kFormat, where, ": field \"", key, "\" must be true or false");
  return it->get<bool>();
}

namespace {

class UnicodeNormalizer final : public Normalizer {
 public:
  explicit UnicodeNormalizer(int options) : options_(options) {}
  void normalize(std::string& text) const override {
    if (options_ == (UTF8PROC_STABLE | UTF8PROC_COMPOSE)) {
      text = nfc(text);
      return;
    }
    if (!is_valid_utf8(text)) return;
    utf8proc_uint8_t* result = nullptr;
    utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                                      static_cast<utf8proc_ssize_t>(text.size()), &result,
                                      static_cast<utf8proc_option_t>(options_));
    FS_CHECK(n >= 0, kInvalidArgument, "unicode normalization failed: ", utf8proc_errmsg(n));
    text.assign(reinterpret_cast<char*>(result), static_cast<std::size_t>(n));
    std::free(result);
  }

 private:
  int options_;
};

// Replace with a literal pattern (the form every supported family uses) or a regex.
class ReplaceNormalizer final : public Normalizer {
 public:
  ReplaceNormalizer(std::string literal, std::unique_ptr<Regex> regex, std::string content)
      : literal_(std::move(literal)), regex_(std::move(regex)), content_(std::move(content)) {}
  void normalize(std::string& text) const override {
    std::string out;
    out.reserve(text.size());
    if (regex_) {
      std::size_t last = 0;
      for (auto [b, e] : regex_->find_all(text)) {
        out.append(text, last, b - last);
        out += content_;
        last = e;
      }
      out.append(text, last, std::string::npos);
    } else {
      if (literal_.empty()) return;
      std::size_t last = 0;
      for (std::size_t pos = text.find(literal_); pos != std::string::npos;
           pos = text.find(literal_, last)) {
        out.append(text, last, pos - last);
        out += content_;
        last = pos + literal_.size();
      }
      out.append(text, last, std::string::npos);
    }
    text = std::move(out);
  }

 private:
  std::string literal_;
  std::unique_ptr<Regex> regex_;
  std::string content_;
};

class PrependNormalizer final : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  void normalize(std::string& text) const override {
    // HF prepends only to non-empty text.
    if (!text.empty()) text = prefix_ + text;
  }

 private:
  std::string prefix_;
};

class SequenceNormalizer final : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> items)
      : items_(std::move(items)) {}
  void normalize(std::string& text) const override {
    for (const auto& n : items_) n->normalize(text);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> items_;
};

}  // namespace

// The {"String": s} or {"Regex": r} pattern object of Replace and Split.
std::pair<std::string, std::unique_ptr<Regex>> parse_pattern(const nlohmann::json& j,
                                                             const std::string& where) {
  const auto& p = json_field(j, "pattern", where);
  if (p.is_object() && p.contains("String") && p["String"].is_string())
    return {p["String"].get<std::string>(), nullptr};
  if (p.is_object() && p.contains("Regex") && p["Regex"].is_string())
    return {"", std::make_unique<Regex>(p["Regex"].get<std::string>(), where)};
  throw_error(ErrorCategory::kFormat, where, ": \"pattern\" must be {\"String\": ...} or ",
              "{\"Regex\": ...}");
}

std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& j, const std::string& where) {
  if (j.is_null()) return nullptr;
  std::string type = json_string(j, "type", where);
  if (type == "NFC") return std::make_unique<UnicodeNormalizer>(UTF8PROC_STABLE | UTF8PROC_COMPOSE);
  if (type == "NFD")
    return std::make_unique<UnicodeNormalizer>(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE);
  if (type == "NFKC")
    return std::make_unique<UnicodeNormalizer>(UTF8PROC_STABLE | UTF8PROC_COMPOSE |
                                               UTF8PROC_COMPAT);
  if (type == "NFKD")
    return std::make_unique<UnicodeNormalizer>(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE |
                                               UTF8PROC_COMPAT);
  if (type == "Replace") {
    auto [literal, regex] = parse_pattern(j, where + ".Replace");
    return std::make_unique<ReplaceNormalizer>(std::move(literal), std::move(regex),
                                               json_string(j, "content", where + ".Replace"));
  }
  if (type == "Prepend")
    return std::make_unique<PrependNormalizer>(json_string(j, "prepend", where));
  if (type == "Sequence") {
    const auto& list = json_field(j, "normalizers", where);
    FS_CHECK(list.is_array(), kFormat, where, ".normalizers must be an array");
    std::vector<std::unique_ptr<Normalizer>> items;
    for (std::size_t i = 0; i < list.size(); ++i) {
      auto n = make_normalizer(list[i], where + ".normalizers[" + std::to_string(i) + "]");
      if (n) items.push_back(std::move(n));
    }
    return std::make_unique<SequenceNormalizer>(std::move(items));
  }
  throw_error(ErrorCategory::kUnsupported, where, ": normalizer type \"", type,
              "\" is not supported (supported: NFC, NFD, NFKC, NFKD, Replace, Prepend, Sequence)");
}

std::unique_ptr<Normalizer> make_spm_normalizer(bool add_space_prefix) {
  std::vector<std::unique_ptr<Normalizer>> items;
  if (add_space_prefix) items.push_back(std::make_unique<PrependNormalizer>("\xE2\x96\x81"));
  items.push_back(std::make_unique<ReplaceNormalizer>(" ", nullptr, "\xE2\x96\x81"));
  return std::make_unique<SequenceNormalizer>(std::move(items));
}

}  // namespace flagstone::engine::tok
