// The encode/decode pipeline of Tokenizer: added tokens first, then normalizer, pre-tokenizer and
// model on the text between them, then the post-processor; decode runs the decoder chain.
#include "flagstone/engine/tokenizer/tokenizer.h"

#include <utf8proc.h>

#include <fstream>
#include <sstream>

#include "flagstone/base/error.h"
#include "tokenizer_impl.h"
#include "utf8.h"

namespace flagstone::engine {
namespace tok {

void AddedMatcher::add(std::string_view pattern, std::size_t token_index) {
  if (pattern.empty()) return;
  int node = 0;
  for (char ch : pattern) {
    auto c = static_cast<unsigned char>(ch);
    int next = -1;
    for (auto [k, v] : nodes_[node].kids)
      if (k == c) next = v;
    if (next < 0) {
      next = static_cast<int>(nodes_.size());
      nodes_[node].kids.emplace_back(c, next);
      nodes_.emplace_back();
    }
    node = next;
  }
  // The first token registered for a pattern keeps it.
  if (nodes_[node].token < 0) nodes_[node].token = static_cast<long>(token_index);
}

namespace {
bool is_word_char(char32_t cp) {
  if (cp == '_') return true;
  auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
  return (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) ||
         (cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO);
}
// The code point that ends at byte `end` (exclusive).
char32_t last_code_point(std::string_view text, std::size_t end) {
  std::size_t b = end;
  while (b > 0 && (static_cast<unsigned char>(text[b - 1]) & 0xC0) == 0x80) --b;
  if (b > 0) --b;
  std::size_t n = 0;
  return decode_utf8(text, b, &n);
}
}  // namespace

std::vector<AddedMatcher::Match> AddedMatcher::find_all(
    std::string_view text, const std::vector<AddedToken>& tokens) const {
  std::vector<Match> out;
  if (empty()) return out;
  std::size_t done = 0;  // end of the last accepted match, after rstrip
  std::size_t pos = 0;
  while (pos < text.size()) {
    // Longest pattern starting at pos.
    int node = 0;
    long best = -1;
    std::size_t best_end = 0;
    for (std::size_t i = pos; i < text.size(); ++i) {
      auto c = static_cast<unsigned char>(text[i]);
      int next = -1;
      for (auto [k, v] : nodes_[node].kids)
        if (k == c) next = v;
      if (next < 0) break;
      node = next;
      if (nodes_[node].token >= 0) {
        best = nodes_[node].token;
        best_end = i + 1;
      }
    }
    if (best < 0) {
      ++pos;
      continue;
    }
    const AddedToken& t = tokens[static_cast<std::size_t>(best)];
    std::size_t begin = pos, end = best_end;
    if (t.single_word) {
      bool left_ok = begin == 0 || !is_word_char(last_code_point(text, begin));
      std::size_t n = 0;
      bool right_ok = end == text.size() || !is_word_char(decode_utf8(text, end, &n));
      if (!left_ok || !right_ok) {
        // HF drops this match and resumes after it.
        pos = end;
        continue;
      }
    }
    if (t.lstrip) {
      while (begin > done) {
        char32_t cp = last_code_point(text, begin);
        if (!is_unicode_whitespace(cp)) break;
        std::size_t len = 0;
        std::string tmp;
        append_utf8(tmp, cp);
        len = tmp.size();
        begin -= len;
      }
    }
    if (t.rstrip) {
      while (end < text.size()) {
        std::size_t n = 0;
        char32_t cp = decode_utf8(text, end, &n);
        if (!is_unicode_whitespace(cp)) break;
        end += n;
      }
    }
    out.push_back({begin, end, static_cast<std::size_t>(best)});
    done = end;
    pos = end;
  }
  return out;
}

}  // namespace tok

namespace {
// Calls `text_fn(offset, text)` for the stretches between matches and `token_fn(index)` for the
// matches, in order.
template <typename TextFn, typename TokenFn>
void split_added(std::string_view text, const tok::AddedMatcher& matcher,
                 const std::vector<AddedToken>& tokens, TextFn text_fn, TokenFn token_fn) {
  std::size_t last = 0;
  for (const auto& m : matcher.find_all(text, tokens)) {
    if (m.begin > last) text_fn(last, text.substr(last, m.begin - last));
    token_fn(m.token_index);
    last = m.end;
  }
  if (last < text.size()) text_fn(last, text.substr(last));
}

// transformers' clean_up_tokenization: removes the space that word-level decoders put before
// punctuation and English contractions.
std::string clean_up_tokenization(std::string s) {
  static const std::pair<const char*, const char*> kRules[] = {
      {" .", "."},     {" ?", "?"},   {" !", "!"},   {" ,", ","},     {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (auto [from, to] : kRules) {
    std::string out;
    std::string_view f(from);
    std::size_t last = 0;
    for (std::size_t p = s.find(f); p != std::string::npos; p = s.find(f, last)) {
      out.append(s, last, p - last);
      out += to;
      last = p + f.size();
    }
    out.append(s, last, std::string::npos);
    s = std::move(out);
  }
  return s;
}

std::string read_file(const std::filesystem::path& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  FS_CHECK(in.good(), kNotFound, what, " ", path.string(), " cannot be opened");
  std::ostringstream ss;
  ss << in.rdbuf();
  FS_CHECK(!in.bad(), kIo, "reading ", path.string(), " failed");
  return ss.str();
}
}  // namespace

Tokenizer Tokenizer::from_json(std::string_view tokenizer_json, std::string_view tokenizer_config,
                               std::string_view source) {
  return TokenizerBuilder::from_hf(tokenizer_json, tokenizer_config, "", source);
}

Tokenizer Tokenizer::from_files(const std::filesystem::path& tokenizer_json,
                                const std::filesystem::path& tokenizer_config) {
  std::string json = read_file(tokenizer_json, "tokenizer file");
  std::string config, chat;
  if (!tokenizer_config.empty()) {
    config = read_file(tokenizer_config, "tokenizer config");
    // Newer transformers save the template next to the config instead of inside it.
    auto jinja = tokenizer_config.parent_path() / "chat_template.jinja";
    if (std::filesystem::exists(jinja)) chat = read_file(jinja, "chat template");
  }
  return TokenizerBuilder::from_hf(json, config, chat, tokenizer_json.string());
}

Tokenizer Tokenizer::from_folder(const std::filesystem::path& folder) {
  auto json = folder / "tokenizer.json";
  FS_CHECK(std::filesystem::exists(json), kNotFound, "model folder ", folder.string(),
           " has no tokenizer.json (only tokenizer.json based tokenizers are supported; a ",
           "tokenizer.model alone is not)");
  auto config = folder / "tokenizer_config.json";
  return from_files(json, std::filesystem::exists(config) ? config : std::filesystem::path());
}

Tokenizer Tokenizer::from_gguf(const GgufTokenizerData& data) {
  return TokenizerBuilder::from_gguf(data);
}

Tokenizer TokenizerBuilder::finish(std::shared_ptr<Tokenizer::Impl> impl) {
  for (std::size_t i = 0; i < impl->added.size(); ++i) {
    const AddedToken& t = impl->added[i];
    impl->added_by_id[t.id] = i;
    impl->added_by_content.emplace(t.content, t.id);
    if (t.normalized && impl->normalizer) {
      // HF matches a normalized token by its normalized form.
      std::string pattern = t.content;
      impl->normalizer->normalize(pattern);
      impl->normalized_matcher.add(pattern, i);
    } else if (t.normalized) {
      impl->normalized_matcher.add(t.content, i);
    } else {
      impl->raw_matcher.add(t.content, i);
    }
  }
  Tokenizer result(impl);
  // End-of-turn tokens of the chat formats also stop generation.
  static const char* kStops[] = {"<|eot_id|>", "<|eom_id|>", "<|im_end|>", "<|endoftext|>",
                                 "<|end_of_text|>"};
  auto add_stop = [&](TokenId id) {
    for (TokenId s : impl->stop_ids)
      if (s == id) return;
    impl->stop_ids.push_back(id);
  };
  if (impl->eos) add_stop(*impl->eos);
  for (const char* s : kStops) {
    auto it = impl->added_by_content.find(std::string_view(s));
    if (it != impl->added_by_content.end()) add_stop(it->second);
  }
  return result;
}

std::vector<TokenId> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  const Impl& im = *impl_;
  FS_CHECK(tok::is_valid_utf8(text), kInvalidArgument, "tokenizer ", im.source,
           ": input text is not valid UTF-8");
  std::vector<TokenId> ids;
  if (add_special_tokens) ids = im.post.prefix;
  std::vector<tok::Piece> pieces;
  auto run_model = [&](std::string_view s, bool at_start) {
    pieces.clear();
    pieces.push_back({std::string(s), at_start});
    if (im.pre_tokenizer) im.pre_tokenizer->pre_tokenize(pieces);
    for (const auto& p : pieces) im.model->tokenize(p.text, ids);
  };
  auto added_id = [&](std::size_t index) { ids.push_back(im.added[index].id); };
  split_added(
      text, im.raw_matcher, im.added,
      [&](std::size_t offset, std::string_view segment) {
        std::string normalized(segment);
        if (im.normalizer) im.normalizer->normalize(normalized);
        split_added(
            normalized, im.normalized_matcher, im.added,
            [&](std::size_t sub, std::string_view s) { run_model(s, offset == 0 && sub == 0); },
            added_id);
      },
      added_id);
  if (add_special_tokens) ids.insert(ids.end(), im.post.suffix.begin(), im.post.suffix.end());
  return ids;
}

std::string Tokenizer::decode(std::span<const TokenId> ids, bool skip_special_tokens) const {
  const Impl& im = *impl_;
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (TokenId id : ids) {
    auto it = im.added_by_id.find(id);
    if (it != im.added_by_id.end()) {
      const AddedToken& t = im.added[it->second];
      if (!(skip_special_tokens && t.special)) tokens.push_back(t.content);
      continue;
    }
    const std::string* s = im.model->vocab().token(id);
    FS_CHECK(s != nullptr, kInvalidArgument, "tokenizer ", im.source, ": token id ", id,
             " is not in the vocabulary (size ", vocab_size(), ")");
    tokens.push_back(*s);
  }
  std::string out;
  if (im.decoder) {
    im.decoder->decode_chain(tokens);
    for (const auto& t : tokens) out += t;
  } else {
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      if (i) out += ' ';
      out += tokens[i];
    }
  }
  if (im.clean_up_spaces) out = clean_up_tokenization(std::move(out));
  return out;
}

std::optional<std::string> Tokenizer::id_to_token(TokenId id) const {
  auto it = impl_->added_by_id.find(id);
  if (it != impl_->added_by_id.end()) return impl_->added[it->second].content;
  if (const std::string* s = impl_->model->vocab().token(id)) return *s;
  return std::nullopt;
}

std::optional<TokenId> Tokenizer::token_to_id(std::string_view token) const {
  auto it = impl_->added_by_content.find(token);
  if (it != impl_->added_by_content.end()) return it->second;
  return impl_->model->vocab().find(token);
}

std::size_t Tokenizer::vocab_size() const {
  std::size_t n = impl_->model->vocab().size();
  for (const auto& t : impl_->added) n = std::max(n, static_cast<std::size_t>(t.id) + 1);
  return n;
}

bool Tokenizer::is_special(TokenId id) const {
  auto it = impl_->added_by_id.find(id);
  return it != impl_->added_by_id.end() && impl_->added[it->second].special;
}

const std::vector<AddedToken>& Tokenizer::added_tokens() const {
  return impl_->added;
}
std::optional<TokenId> Tokenizer::bos_id() const {
  return impl_->bos;
}
std::optional<TokenId> Tokenizer::eos_id() const {
  return impl_->eos;
}
std::optional<TokenId> Tokenizer::pad_id() const {
  return impl_->pad;
}
std::optional<TokenId> Tokenizer::unk_id() const {
  return impl_->unk;
}
const std::vector<TokenId>& Tokenizer::stop_ids() const {
  return impl_->stop_ids;
}
const std::string& Tokenizer::bos_token() const {
  return impl_->bos_token;
}
const std::string& Tokenizer::eos_token() const {
  return impl_->eos_token;
}
const std::string& Tokenizer::chat_template() const {
  return impl_->chat_template;
}

}  // namespace flagstone::engine
