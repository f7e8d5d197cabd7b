// Text <-> token ids for the supported model families (GPT-2, Llama 2/3, Mistral, Qwen2): built
// from a Hugging Face tokenizer.json + tokenizer_config.json or from a GGUF file's vocabulary.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace flagstone::engine {

using TokenId = std::int32_t;

// The tokenizer.ggml.* metadata of a GGUF file, as plain values. The GGUF reader fills it; an
// empty vector or unset optional means the key was absent.
struct GgufTokenizerData {
  std::string source;               // the file, for error messages
  std::string model;                // tokenizer.ggml.model: "gpt2" or "llama"
  std::string pre;                  // tokenizer.ggml.pre: "default", "llama-bpe", "qwen2", ...
  std::vector<std::string> tokens;  // tokenizer.ggml.tokens
  std::vector<float> scores;        // tokenizer.ggml.scores
  std::vector<std::int32_t> token_types;  // tokenizer.ggml.token_type (1 normal .. 6 byte)
  std::vector<std::string> merges;        // tokenizer.ggml.merges, "left right"
  std::optional<std::int64_t> bos_id, eos_id, unk_id, pad_id, eot_id;
  std::optional<bool> add_bos_token, add_eos_token;  // tokenizer.ggml.add_{bos,eos}_token
  std::optional<bool> add_space_prefix;              // tokenizer.ggml.add_space_prefix
  std::string chat_template;                         // tokenizer.chat_template
};

// How the tokenizer was told to treat one token when the vocabulary was loaded.
struct AddedToken {
  std::string content;
  TokenId id = 0;
  bool special = false;      // skipped by decode(skip_special_tokens = true)
  bool lstrip = false;       // swallows whitespace on its left when matched in text
  bool rstrip = false;       // swallows whitespace on its right
  bool single_word = false;  // matches only as a whole word
  bool normalized = false;   // matched in normalized text instead of raw text
};

// The tokenizer of a model folder (tokenizer.json + tokenizer_config.json) as GGUF metadata, the
// way llama.cpp's converter writes it: byte-level BPE as "gpt2" with its pre-tokenizer's name,
// byte-fallback BPE as "llama" with scores ranking the merges. kUnsupported names what GGUF
// cannot express (an unknown split pattern, a normalizer).
GgufTokenizerData gguf_tokenizer_data_from_folder(const std::filesystem::path& folder);

class Tokenizer {
 public:
  // Reads tokenizer.json and, when it exists, tokenizer_config.json from a model folder.
  static Tokenizer from_folder(const std::filesystem::path& folder);
  // `tokenizer_config` may be empty: no config.
  static Tokenizer from_files(const std::filesystem::path& tokenizer_json,
                              const std::filesystem::path& tokenizer_config = {});
  // From the two documents' text; `source` names them in errors.
  static Tokenizer from_json(std::string_view tokenizer_json, std::string_view tokenizer_config,
                             std::string_view source);
  static Tokenizer from_gguf(const GgufTokenizerData& data);

  // Encodes UTF-8 text. Added and special tokens written in the text are always recognised;
  // `add_special_tokens` adds the BOS/EOS of the post-processor (as HF's encode does).
  std::vector<TokenId> encode(std::string_view text, bool add_special_tokens = true) const;
  // Decodes ids to UTF-8 (invalid byte runs become U+FFFD exactly as HF does).
  std::string decode(std::span<const TokenId> ids, bool skip_special_tokens = false) const;

  // The token string of an id (model or added vocabulary); nullopt when the id is unused.
  std::optional<std::string> id_to_token(TokenId id) const;
  std::optional<TokenId> token_to_id(std::string_view token) const;
  // One past the largest id.
  std::size_t vocab_size() const;
  bool is_special(TokenId id) const;
  const std::vector<AddedToken>& added_tokens() const;

  std::optional<TokenId> bos_id() const;
  std::optional<TokenId> eos_id() const;
  std::optional<TokenId> pad_id() const;
  std::optional<TokenId> unk_id() const;
  // Ids that end generation: EOS plus end-of-turn tokens that the vocabulary marks (e.g.
  // <|eot_id|>, <|im_end|>, <|endoftext|>).
  const std::vector<TokenId>& stop_ids() const;
  const std::string& bos_token() const;  // "" when none
  const std::string& eos_token() const;
  // The default chat template ("" when the files carry none).
  const std::string& chat_template() const;

 private:
  struct Impl;
  explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
  friend struct TokenizerBuilder;
};

}  // namespace flagstone::engine
