// The subword models: merge-ranked BPE (tokenizer.json, GGUF "gpt2") and score-ranked
// SentencePiece BPE (GGUF "llama"), both with byte fallback and a per-piece cache.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "pipeline.h"

namespace flagstone::engine::tok {

// Hash for string maps that accept string_view lookups without building a string.
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
template <typename V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

// Token strings by id (holes allowed) and ids by token string.
class Vocab {
 public:
  void add(std::string token, TokenId id, const std::string& where);
  std::optional<TokenId> find(std::string_view token) const {
    auto it = ids_.find(token);
    if (it == ids_.end()) return std::nullopt;
    return it->second;
  }
  const std::string* token(TokenId id) const {
    if (id < 0 || static_cast<std::size_t>(id) >= tokens_.size() || !present_[id]) return nullptr;
    return &tokens_[id];
  }
  // One past the largest id.
  std::size_t size() const { return tokens_.size(); }

 private:
  std::vector<std::string> tokens_;
  std::vector<bool> present_;
  StringMap<TokenId> ids_;
};

class Model {
 public:
  virtual ~Model() = default;
  // Appends the ids of one pre-tokenized piece.
  virtual void tokenize(std::string_view piece, std::vector<TokenId>& out) const = 0;
  virtual const Vocab& vocab() const = 0;
};

// A small thread-safe cache from piece to ids; pieces repeat heavily in natural text.
class PieceCache {
 public:
  explicit PieceCache(std::size_t capacity) : capacity_(capacity) {}
  bool get(std::string_view piece, std::vector<TokenId>& out) const;
  void put(std::string_view piece, const std::vector<TokenId>& ids, std::size_t from) const;

 private:
  std::size_t capacity_;
  mutable std::mutex mutex_;
  mutable StringMap<std::vector<TokenId>> map_;
};

struct BpeOptions {
  std::optional<std::string> unk_token;
  bool fuse_unk = false;
  bool byte_fallback = false;
  bool ignore_merges = false;  // a piece that is itself a token skips the merges (Llama 3)
};

class BpeModel final : public Model {
 public:
  // `merges` are (left, right) token strings in rank order.
  BpeModel(Vocab vocab, const std::vector<std::pair<std::string, std::string>>& merges,
           BpeOptions options, const std::string& where);
  void tokenize(std::string_view piece, std::vector<TokenId>& out) const override;
  const Vocab& vocab() const override { return vocab_; }

 private:
  struct Merge {
    std::uint32_t rank;
    TokenId result;
  };
  static std::uint64_t key(TokenId a, TokenId b) {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) |
           static_cast<std::uint32_t>(b);
  }
  void merge_word(std::string_view piece, std::vector<TokenId>& out) const;

  Vocab vocab_;
  std::unordered_map<std::uint64_t, Merge> merges_;
  BpeOptions options_;
  std::optional<TokenId> unk_id_;
  TokenId byte_ids_[256];
  bool have_byte_ids_ = false;
  PieceCache cache_{10000};
};

// SentencePiece BPE: adjacent pieces merge when their concatenation is a token, highest score
// first (leftmost on ties); characters outside the vocabulary become <0xNN> byte tokens.
class SpmModel final : public Model {
 public:
  SpmModel(Vocab vocab, std::vector<float> scores, std::optional<TokenId> unk_id,
           const std::string& where);
  void tokenize(std::string_view piece, std::vector<TokenId>& out) const override;
  const Vocab& vocab() const override { return vocab_; }

 private:
  Vocab vocab_;
  std::vector<float> scores_;
  std::optional<TokenId> unk_id_;
  TokenId byte_ids_[256];
  bool have_byte_ids_ = false;
};

// "<0x0A>" style name of a byte token, as SentencePiece and HF spell it.
std::string byte_token_name(std::uint8_t byte);

}  // namespace flagstone::engine::tok
