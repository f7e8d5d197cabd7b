// Builds a Tokenizer from tokenizer.json and tokenizer_config.json (Hugging Face format).
#include <functional>

#include "flagstone/base/error.h"
#include "tokenizer_impl.h"

namespace flagstone::engine {
namespace {

using nlohmann::json;

json parse_json(std::string_view text, const std::string& what) {
  try {
    return json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    throw_error(ErrorCategory::kFormat, what, " is not valid JSON: ", e.what());
  }
}

// bos_token and friends: a string, an AddedToken object {"content": ...}, or null.
std::optional<std::string> special_token_string(const json& config, const char* key) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string())
    return (*it)["content"].get<std::string>();
  return std::nullopt;
}

std::unique_ptr<tok::Model> make_model(const json& j, const std::string& where) {
  FS_CHECK(j.is_object(), kFormat, where, " must be an object");
  std::string type = j.contains("type") && j["type"].is_string() ? j["type"].get<std::string>()
                     : j.contains("merges")                      ? "BPE"
                                                                 : "";
  FS_CHECK(type == "BPE", kUnsupported, where, ": model type \"", type,
           "\" is not supported (only BPE, which the GPT-2, Llama, Mistral and Qwen families use)");
  for (const char* unsupported : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    auto it = j.find(unsupported);
    FS_CHECK(it == j.end() || it->is_null() || (it->is_string() && it->get<std::string>().empty()),
             kUnsupported, where, ": ", unsupported, " is not supported");
  }
  auto dropout = j.find("dropout");
  FS_CHECK(dropout == j.end() || dropout->is_null() ||
               (dropout->is_number() && dropout->get<double>() == 0.0),
           kUnsupported, where, ": BPE dropout is a training feature and is not supported");

  tok::Vocab vocab;
  const json& v = tok::json_field(j, "vocab", where);
  FS_CHECK(v.is_object(), kFormat, where, ".vocab must be an object of token: id");
  for (auto it = v.begin(); it != v.end(); ++it) {
    FS_CHECK(it.value().is_number_integer(), kFormat, where, ".vocab[\"", it.key(),
             "\"] must be an integer id");
    vocab.add(it.key(), it.value().get<TokenId>(), where + ".vocab");
  }

  std::vector<std::pair<std::string, std::string>> merges;
  const json& m = tok::json_field(j, "merges", where);
  FS_CHECK(m.is_array(), kFormat, where, ".merges must be an array");
  merges.reserve(m.size());
  for (std::size_t i = 0; i < m.size(); ++i) {
    const json& e = m[i];
    if (e.is_string()) {
      // "a b": exactly one separating space, as HF requires.
      const auto& s = e.get_ref<const std::string&>();
      auto sp = s.find(' ');
      FS_CHECK(sp != std::string::npos && s.find(' ', sp + 1) == std::string::npos, kFormat, where,
               ".merges[", i, "] = \"", s, "\" must be two tokens separated by one space");
      merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    } else {
      FS_CHECK(e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string(), kFormat,
               where, ".merges[", i, "] must be \"a b\" or [\"a\", \"b\"]");
      merges.emplace_back(e[0].get<std::string>(), e[1].get<std::string>());
    }
  }
  tok::BpeOptions options;
  if (j.contains("unk_token") && j["unk_token"].is_string())
    options.unk_token = j["unk_token"].get<std::string>();
  options.fuse_unk = tok::json_bool(j, "fuse_unk", false, where);
  options.byte_fallback = tok::json_bool(j, "byte_fallback", false, where);
  options.ignore_merges = tok::json_bool(j, "ignore_merges", false, where);
  return std::make_unique<tok::BpeModel>(std::move(vocab), merges, std::move(options), where);
}

// TemplateProcessing (the "single" template), ByteLevel (no ids), or a Sequence of them.
void add_post_processor(const json& j, const std::string& where, tok::PostProcessor& post,
                        const std::function<std::optional<TokenId>(const std::string&)>& lookup) {
  if (j.is_null()) return;
  std::string type = tok::json_string(j, "type", where);
  if (type == "ByteLevel") return;
  if (type == "Sequence") {
    const json& list = tok::json_field(j, "processors", where);
    FS_CHECK(list.is_array(), kFormat, where, ".processors must be an array");
    for (std::size_t i = 0; i < list.size(); ++i)
      add_post_processor(list[i], where + ".processors[" + std::to_string(i) + "]", post, lookup);
    return;
  }
  FS_CHECK(type == "TemplateProcessing", kUnsupported, where, ": post-processor \"", type,
           "\" is not supported (TemplateProcessing, ByteLevel, Sequence)");
  const json& single = tok::json_field(j, "single", where);
  FS_CHECK(single.is_array(), kFormat, where, ".single must be an array");
  const json& specials = j.contains("special_tokens") ? j["special_tokens"] : json::object();
  bool seen_sequence = false;
  for (const json& item : single) {
    if (item.contains("Sequence")) {
      seen_sequence = true;
      continue;
    }
    FS_CHECK(item.contains("SpecialToken"), kFormat, where,
             ".single items must be {\"Sequence\": ...} or {\"SpecialToken\": ...}");
    std::string name = tok::json_string(item["SpecialToken"], "id", where + ".single");
    std::vector<TokenId> ids;
    if (specials.contains(name) && specials[name].contains("ids")) {
      for (const json& id : specials[name]["ids"]) ids.push_back(id.get<TokenId>());
    } else {
      auto id = lookup(name);
      FS_CHECK(id.has_value(), kFormat, where, ": special token \"", name, "\" is unknown");
      ids.push_back(*id);
    }
    auto& target = seen_sequence ? post.suffix : post.prefix;
    target.insert(target.end(), ids.begin(), ids.end());
  }
}

}  // namespace

Tokenizer TokenizerBuilder::from_hf(std::string_view tokenizer_json, std::string_view config_json,
                                    std::string_view chat_template_file, std::string_view source) {
  try {
    return from_hf_checked(tokenizer_json, config_json, chat_template_file, source);
  } catch (const nlohmann::json::exception& e) {
    // A value of the wrong JSON type somewhere the checks above did not look.
    throw_error(ErrorCategory::kFormat, "tokenizer file ", source, ": ", e.what());
  }
}

Tokenizer TokenizerBuilder::from_hf_checked(std::string_view tokenizer_json,
                                            std::string_view config_json,
                                            std::string_view chat_template_file,
                                            std::string_view source) {
  auto impl = std::make_shared<Tokenizer::Impl>();
  impl->source = std::string(source);
  const std::string& src = impl->source;
  json j = parse_json(tokenizer_json, "tokenizer file " + src);
  FS_CHECK(j.is_object(), kFormat, "tokenizer file ", src, " must hold a JSON object");

  impl->model = make_model(tok::json_field(j, "model", src), src + ": model");
  impl->normalizer = tok::make_normalizer(j.value("normalizer", json()), src + ": normalizer");
  impl->pre_tokenizer =
      tok::make_pre_tokenizer(j.value("pre_tokenizer", json()), src + ": pre_tokenizer");
  impl->decoder = tok::make_decoder(j.value("decoder", json()), src + ": decoder");

  if (j.contains("added_tokens")) {
    const json& list = j["added_tokens"];
    FS_CHECK(list.is_array(), kFormat, src, ": added_tokens must be an array");
    for (std::size_t i = 0; i < list.size(); ++i) {
      std::string where = src + ": added_tokens[" + std::to_string(i) + "]";
      const json& t = list[i];
      AddedToken a;
      a.content = tok::json_string(t, "content", where);
      const json& id = tok::json_field(t, "id", where);
      FS_CHECK(id.is_number_integer() && id.get<long long>() >= 0, kFormat, where,
               ": id must be a non-negative integer");
      a.id = id.get<TokenId>();
      a.special = tok::json_bool(t, "special", false, where);
      a.lstrip = tok::json_bool(t, "lstrip", false, where);
      a.rstrip = tok::json_bool(t, "rstrip", false, where);
      a.single_word = tok::json_bool(t, "single_word", false, where);
      a.normalized = tok::json_bool(t, "normalized", !a.special, where);
      impl->added.push_back(std::move(a));
    }
  }

  auto lookup = [&](const std::string& token) -> std::optional<TokenId> {
    for (const auto& a : impl->added)
      if (a.content == token) return a.id;
    return impl->model->vocab().find(token);
  };
  add_post_processor(j.value("post_processor", json()), src + ": post_processor", impl->post,
                     lookup);

  if (!config_json.empty()) {
    std::string where = "tokenizer config for " + src;
    json config = parse_json(config_json, where);
    FS_CHECK(config.is_object(), kFormat, where, " must hold a JSON object");
    auto resolve = [&](const char* key, std::optional<TokenId>& id, std::string* text) {
      auto s = special_token_string(config, key);
      if (!s) return;
      auto found = lookup(*s);
      FS_CHECK(found.has_value(), kFormat, where, ": ", key, " \"", *s,
               "\" is not in the vocabulary");
      id = found;
      if (text) *text = *s;
    };
    resolve("bos_token", impl->bos, &impl->bos_token);
    resolve("eos_token", impl->eos, &impl->eos_token);
    resolve("pad_token", impl->pad, nullptr);
    resolve("unk_token", impl->unk, nullptr);
    // transformers rebuilds the post-processor from these flags when the config sets them.
    bool has_bos_flag = config.contains("add_bos_token") && config["add_bos_token"].is_boolean();
    bool has_eos_flag = config.contains("add_eos_token") && config["add_eos_token"].is_boolean();
    if (has_bos_flag || has_eos_flag) {
      bool add_bos = has_bos_flag && config["add_bos_token"].get<bool>();
      bool add_eos = has_eos_flag && config["add_eos_token"].get<bool>();
      FS_CHECK(!add_bos || impl->bos, kFormat, where,
               ": add_bos_token is true but there is no bos_token");
      FS_CHECK(!add_eos || impl->eos, kFormat, where,
               ": add_eos_token is true but there is no eos_token");
      impl->post.prefix.clear();
      impl->post.suffix.clear();
      if (add_bos) impl->post.prefix.push_back(*impl->bos);
      if (add_eos) impl->post.suffix.push_back(*impl->eos);
    }
    impl->clean_up_spaces = tok::json_bool(config, "clean_up_tokenization_spaces", false, where);
    if (config.contains("chat_template")) {
      const json& ct = config["chat_template"];
      if (ct.is_string()) {
        impl->chat_template = ct.get<std::string>();
      } else if (ct.is_array()) {
        // A list of named templates: take "default".
        for (const json& e : ct)
          if (e.is_object() && e.value("name", "") == "default" && e.contains("template") &&
              e["template"].is_string())
            impl->chat_template = e["template"].get<std::string>();
      }
    }
  }
  if (!chat_template_file.empty()) impl->chat_template = std::string(chat_template_file);
  return finish(std::move(impl));
}

}  // namespace flagstone::engine
