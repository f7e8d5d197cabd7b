// The stages of the tokenizer pipeline (normalizer, pre-tokenizer, model, decoder, post-processor)
// with the semantics of HF tokenizers, each built from its tokenizer.json object.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace flagstone::engine::tok {

class Regex;
using TokenId = std::int32_t;

// A stretch of text between added tokens. `at_start` is true when it begins at byte 0 of the
// caller's input; Metaspace's prepend_scheme "first" depends on it.
struct Piece {
  std::string text;
  bool at_start = false;
};

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& text) const = 0;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces `pieces` by their split (and possibly rewritten) pieces.
  virtual void pre_tokenize(std::vector<Piece>& pieces) const = 0;
};

class Decoder {
 public:
  virtual ~Decoder() = default;
  // The decode_chain of HF: a token list in, a token list out; the final string is their join.
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};

// The ids added around the encoded sequence when special tokens are requested.
struct PostProcessor {
  std::vector<TokenId> prefix;
  std::vector<TokenId> suffix;
};

// Builders from tokenizer.json objects; `where` names the JSON path for errors (with the file).
std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& j, const std::string& where);
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& j, const std::string& where);
std::unique_ptr<Decoder> make_decoder(const nlohmann::json& j, const std::string& where);

// Direct constructors, used by the GGUF factory.
std::unique_ptr<Normalizer> make_spm_normalizer(bool add_space_prefix);
std::unique_ptr<PreTokenizer> make_byte_level_split(std::string_view pattern);
std::unique_ptr<Decoder> make_spm_decoder(bool strip_leading_space);
std::unique_ptr<Decoder> make_byte_level_decoder();

// Accessors that turn a missing or mistyped field into a kFormat error naming `where`.
const nlohmann::json& json_field(const nlohmann::json& j, const char* key,
                                 const std::string& where);
std::string json_string(const nlohmann::json& j, const char* key, const std::string& where);
// The {"String": s} or {"Regex": r} pattern of Replace and Split: a literal or a compiled regex.
std::pair<std::string, std::unique_ptr<Regex>> parse_pattern(const nlohmann::json& j,
                                                             const std::string& where);
bool json_bool(const nlohmann::json& j, const char* key, bool fallback, const std::string& where);

}  // namespace flagstone::engine::tok
