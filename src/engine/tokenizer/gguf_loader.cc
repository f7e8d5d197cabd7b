// Builds a Tokenizer from the tokenizer.ggml.* metadata of a GGUF file: "gpt2" is byte-level BPE
// with merges and a named split pattern, "llama" is SentencePiece BPE ranked by scores.
#include "flagstone/base/error.h"
#include "regex.h"
#include "tokenizer_impl.h"

namespace flagstone::engine {
namespace {

// llama.cpp's token types.
enum : std::int32_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6
};

std::unique_ptr<tok::PreTokenizer> gguf_pre_tokenizer(const std::string& pre,
                                                      const std::string& where) {
  if (pre.empty() || pre == "default") {
    // llama.cpp's fallback for BPE vocabularies: four splits applied one after the other.
    std::vector<nlohmann::json> splits;
    for (const char* p :
         {R"([\p{P}\$\+<=>\^~\|]+)",
          R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))", R"(\p{N}+)",
          R"([0-9][0-9][0-9])"})
      splits.push_back({{"type", "Split"}, {"pattern", {{"Regex", p}}}, {"behavior", "Isolated"}});
    splits.push_back({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}});
    return tok::make_pre_tokenizer({{"type", "Sequence"}, {"pretokenizers", splits}}, where);
  }
  if (pre == "gpt-2" || pre == "gpt2") return tok::make_byte_level_split(tok::kGpt2Pattern);
  if (pre == "llama-bpe" || pre == "llama3" || pre == "llama-v3")
    return tok::make_byte_level_split(tok::kLlama3Pattern);
  if (pre == "qwen2") return tok::make_byte_level_split(tok::kQwen2Pattern);
  throw_error(ErrorCategory::kUnsupported, where, ": tokenizer.ggml.pre \"", pre,
              "\" is not supported (supported: default, gpt-2, llama-bpe, llama3, qwen2)");
}

std::optional<TokenId> checked_id(const std::optional<std::int64_t>& id, std::size_t n,
                                  const char* key, const std::string& where) {
  if (!id) return std::nullopt;
  FS_CHECK(*id >= 0 && static_cast<std::size_t>(*id) < n, kFormat, where, ": ", key, " = ", *id,
           " is outside the vocabulary of ", n, " tokens");
  return static_cast<TokenId>(*id);
}

}  // namespace

Tokenizer TokenizerBuilder::from_gguf(const GgufTokenizerData& d) {
  auto impl = std::make_shared<Tokenizer::Impl>();
  impl->source = d.source.empty() ? std::string("GGUF tokenizer") : d.source;
  const std::string& where = impl->source;
  std::size_t n = d.tokens.size();
  FS_CHECK(n > 0, kFormat, where, ": tokenizer.ggml.tokens is missing or empty");
  FS_CHECK(d.token_types.empty() || d.token_types.size() == n, kFormat, where,
           ": tokenizer.ggml.token_type has ", d.token_types.size(), " entries for ", n, " tokens");

  tok::Vocab vocab;
  for (std::size_t i = 0; i < n; ++i) vocab.add(d.tokens[i], static_cast<TokenId>(i), where);

  impl->bos = checked_id(d.bos_id, n, "tokenizer.ggml.bos_token_id", where);
  impl->eos = checked_id(d.eos_id, n, "tokenizer.ggml.eos_token_id", where);
  impl->unk = checked_id(d.unk_id, n, "tokenizer.ggml.unknown_token_id", where);
  impl->pad = checked_id(d.pad_id, n, "tokenizer.ggml.padding_token_id", where);
  auto eot = checked_id(d.eot_id, n, "tokenizer.ggml.eot_token_id", where);
  if (impl->bos) impl->bos_token = d.tokens[static_cast<std::size_t>(*impl->bos)];
  if (impl->eos) impl->eos_token = d.tokens[static_cast<std::size_t>(*impl->eos)];

  bool add_bos;
  if (d.model == "gpt2") {
    std::vector<std::pair<std::string, std::string>> merges;
    merges.reserve(d.merges.size());
    for (std::size_t i = 0; i < d.merges.size(); ++i) {
      const std::string& m = d.merges[i];
      auto sp = m.find(' ');
      FS_CHECK(sp != std::string::npos && sp > 0 && sp + 1 < m.size(), kFormat, where,
               ": tokenizer.ggml.merges[", i, "] = \"", m, "\" is not \"left right\"");
      merges.emplace_back(m.substr(0, sp), m.substr(sp + 1));
    }
    tok::BpeOptions options;
    options.ignore_merges = d.pre == "llama-bpe" || d.pre == "llama3" || d.pre == "llama-v3";
    impl->model = std::make_unique<tok::BpeModel>(std::move(vocab), merges, options,
                                                  where + ": tokenizer.ggml.merges");
    impl->pre_tokenizer = gguf_pre_tokenizer(d.pre, where);
    // Qwen2's tokenizer.json normalizes to NFC first; llama.cpp skips it, HF does not.
    if (d.pre == "qwen2") impl->normalizer = tok::make_normalizer({{"type", "NFC"}}, where);
    impl->decoder = tok::make_byte_level_decoder();
    add_bos = d.add_bos_token.value_or(false);
  } else if (d.model == "llama") {
    FS_CHECK(d.scores.size() == n, kFormat, where, ": tokenizer.ggml.scores has ", d.scores.size(),
             " entries for ", n, " tokens");
    bool space_prefix = d.add_space_prefix.value_or(true);
    impl->model = std::make_unique<tok::SpmModel>(std::move(vocab), d.scores, impl->unk, where);
    impl->normalizer = tok::make_spm_normalizer(space_prefix);
    impl->decoder = tok::make_spm_decoder(space_prefix);
    add_bos = d.add_bos_token.value_or(true);
  } else {
    throw_error(ErrorCategory::kUnsupported, where, ": tokenizer.ggml.model \"", d.model,
                "\" is not supported (supported: gpt2, llama)");
  }
  FS_CHECK(!add_bos || impl->bos, kFormat, where,
           ": add_bos_token is set but tokenizer.ggml.bos_token_id is missing");
  if (add_bos) impl->post.prefix.push_back(*impl->bos);
  if (d.add_eos_token.value_or(false)) {
    FS_CHECK(impl->eos.has_value(), kFormat, where,
             ": add_eos_token is set but tokenizer.ggml.eos_token_id is missing");
    impl->post.suffix.push_back(*impl->eos);
  }

  // Control and user-defined tokens are matched in the text before the model runs.
  for (std::size_t i = 0; i < d.token_types.size(); ++i) {
    std::int32_t type = d.token_types[i];
    if (type != kControl && type != kUserDefined) continue;
    AddedToken a;
    a.content = d.tokens[i];
    a.id = static_cast<TokenId>(i);
    a.special = type == kControl;
    impl->added.push_back(std::move(a));
  }
  if (eot) impl->stop_ids.push_back(*eot);
  impl->chat_template = d.chat_template;
  return finish(std::move(impl));
}

}  // namespace flagstone::engine
