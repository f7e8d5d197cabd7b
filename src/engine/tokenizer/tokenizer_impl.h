// The state behind flagstone::engine::Tokenizer, shared by the tokenizer.json and GGUF loaders:
// the pipeline stages plus the added-token vocabulary and its matchers.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "flagstone/engine/tokenizer/tokenizer.h"
#include "models.h"
#include "pipeline.h"

namespace flagstone::engine {

namespace tok {
// Finds added tokens in text: leftmost match, longest at that position, as HF's Aho-Corasick
// (LeftmostLongest) does; then HF's single_word, lstrip and rstrip rules.
class AddedMatcher {
 public:
  void add(std::string_view pattern, std::size_t token_index);
  bool empty() const { return nodes_.size() <= 1; }
  struct Match {
    std::size_t begin, end, token_index;
  };
  std::vector<Match> find_all(std::string_view text, const std::vector<AddedToken>& tokens) const;

 private:
  struct Node {
    std::vector<std::pair<unsigned char, int>> kids;
    long token = -1;
  };
  std::vector<Node> nodes_{1};
};
}  // namespace tok

struct Tokenizer::Impl {
  std::string source;
  std::unique_ptr<tok::Normalizer> normalizer;
  std::unique_ptr<tok::PreTokenizer> pre_tokenizer;
  std::unique_ptr<tok::Model> model;
  std::unique_ptr<tok::Decoder> decoder;
  tok::PostProcessor post;
  std::vector<AddedToken> added;
  tok::AddedMatcher raw_matcher;         // tokens with normalized = false
  tok::AddedMatcher normalized_matcher;  // tokens with normalized = true
  std::unordered_map<TokenId, std::size_t> added_by_id;
  tok::StringMap<TokenId> added_by_content;
  std::optional<TokenId> bos, eos, pad, unk;
  std::string bos_token, eos_token;
  std::vector<TokenId> stop_ids;
  std::string chat_template;
  bool clean_up_spaces = false;
};

struct TokenizerBuilder {
  static Tokenizer from_hf(std::string_view tokenizer_json, std::string_view config_json,
                           std::string_view chat_template_file, std::string_view source);
  static Tokenizer from_hf_checked(std::string_view tokenizer_json, std::string_view config_json,
                                   std::string_view chat_template_file, std::string_view source);
  static Tokenizer from_gguf(const GgufTokenizerData& data);
  // Builds the matchers and lookup tables once `added` and the stages are set.
  static Tokenizer finish(std::shared_ptr<Tokenizer::Impl> impl);
};

}  // namespace flagstone::engine
