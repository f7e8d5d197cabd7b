// The tokenizer of a model folder expressed as GGUF tokenizer.ggml.* metadata (what llama.cpp's
// converter writes), so converted GGUF files carry their tokenizer and need no folder to run.
#include <fstream>
#include <sstream>
#include <unordered_map>

#include "flagstone/base/error.h"
#include "regex.h"
#include "tokenizer_impl.h"

namespace flagstone::engine {
namespace {

using nlohmann::json;

// llama.cpp's token types.
enum : std::int32_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6
};

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  FS_CHECK(in.good(), kIo, "cannot read '", path.string(), "'");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The regex of the byte-level pre-tokenizer: a Split inside a Sequence, or the ByteLevel's own
// (GPT-2) pattern when use_regex is on. Empty when neither is there.
std::string byte_level_pattern(const json& pre) {
  if (!pre.is_object()) return "";
  std::string type = pre.value("type", "");
  if (type == "ByteLevel")
    return pre.value("use_regex", true) ? std::string(tok::kGpt2Pattern) : "";
  if (type == "Split") {
    const json& p = pre.contains("pattern") ? pre["pattern"] : json();
    if (p.is_object() && p.contains("Regex") && p["Regex"].is_string()) return p["Regex"];
    return "";
  }
  if (type == "Sequence" && pre.contains("pretokenizers") && pre["pretokenizers"].is_array()) {
    std::string found;
    for (const json& item : pre["pretokenizers"]) {
      std::string p = byte_level_pattern(item);
      if (!p.empty() && found.empty()) found = p;
    }
    return found;
  }
  return "";
}

// SentencePiece-style files prepend "▁" to the text: a Prepend normalizer (Llama 2) or a
// Metaspace pre-tokenizer whose scheme is not "never" (Mistral).
bool adds_space_prefix(const json& j) {
  if (j.is_object()) {
    std::string type = j.value("type", "");
    if (type == "Prepend") return true;
    if (type == "Metaspace") {
      if (j.contains("prepend_scheme") && j["prepend_scheme"].is_string())
        return j["prepend_scheme"] != "never";
      return j.value("add_prefix_space", true);
    }
    for (const char* list : {"normalizers", "pretokenizers"}) {
      if (j.contains(list) && j[list].is_array())
        for (const json& item : j[list])
          if (adds_space_prefix(item)) return true;
    }
  }
  return false;
}

bool is_byte_token(const std::string& t) {
  return t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' &&
         std::isxdigit(static_cast<unsigned char>(t[3])) &&
         std::isxdigit(static_cast<unsigned char>(t[4]));
}

}  // namespace

GgufTokenizerData gguf_tokenizer_data_from_folder(const std::filesystem::path& folder) {
  const std::filesystem::path file = folder / "tokenizer.json";
  const std::string where = file.string();
  std::error_code ec;
  FS_CHECK(std::filesystem::exists(file, ec), kNotFound, "model folder '", folder.string(),
           "' has no tokenizer.json");
  // Building the tokenizer first validates every part of both files.
  Tokenizer tok = Tokenizer::from_folder(folder);
  json j;
  try {
    j = json::parse(read_text(file));
  } catch (const json::exception& e) {
    throw_error(ErrorCategory::kFormat, where, " is not valid JSON: ", e.what());
  }
  const json& model = tok::json_field(j, "model", where);
  const bool byte_fallback = tok::json_bool(model, "byte_fallback", false, where + ".model");

  GgufTokenizerData d;
  d.source = where;
  const std::size_t n = tok.vocab_size();
  d.tokens.resize(n);
  d.token_types.assign(n, kNormal);
  for (std::size_t i = 0; i < n; ++i) {
    auto t = tok.id_to_token(static_cast<TokenId>(i));
    if (t) {
      d.tokens[i] = *t;
    } else {
      // GGUF vocabularies have no holes: llama.cpp fills them with unused placeholders.
      d.tokens[i] = "[PAD" + std::to_string(i) + "]";
      d.token_types[i] = kUnused;
    }
  }
  for (const AddedToken& a : tok.added_tokens())
    d.token_types[static_cast<std::size_t>(a.id)] = a.special ? kControl : kUserDefined;

  std::vector<std::string> merges;
  const json& m = tok::json_field(model, "merges", where + ".model");
  for (const json& e : m) {
    if (e.is_string())
      merges.push_back(e.get<std::string>());
    else
      merges.push_back(e[0].get<std::string>() + " " + e[1].get<std::string>());
  }

  const json& pre = j.contains("pre_tokenizer") ? j["pre_tokenizer"] : json();
  const json& normalizer = j.contains("normalizer") ? j["normalizer"] : json();
  if (!byte_fallback) {
    d.model = "gpt2";
    std::string pattern = byte_level_pattern(pre);
    if (pattern == tok::kLlama3Pattern)
      d.pre = "llama-bpe";
    else if (pattern == tok::kQwen2Pattern)
      d.pre = "qwen2";
    else if (pattern == tok::kGpt2Pattern)
      d.pre = "gpt-2";
    else
      throw_error(ErrorCategory::kUnsupported, where,
                  ": the pre-tokenizer's split pattern is none of the GPT-2, Llama 3 and Qwen2 "
                  "patterns, so GGUF has no name for it");
    bool nfc = normalizer.is_object() && normalizer.value("type", "") == "NFC";
    FS_CHECK(normalizer.is_null() || (nfc && d.pre == "qwen2"), kUnsupported, where,
             ": a byte-level tokenizer with normalizer ", normalizer.dump(),
             " cannot be expressed in GGUF");
    d.merges = std::move(merges);
  } else {
    d.model = "llama";
    // SentencePiece BPE ranks a merge by the score of the piece it makes. HF's merges list is
    // in rank order, so a piece scores minus the rank of the first merge making it; pieces no
    // merge makes rank below them all, and bytes and specials score 0 as sentencepiece's do.
    std::unordered_map<std::string, std::size_t> rank;
    for (std::size_t i = 0; i < merges.size(); ++i) {
      std::string joined = merges[i];
      joined.erase(joined.find(' '), 1);
      rank.emplace(std::move(joined), i);
    }
    d.scores.assign(n, 0.0f);
    for (std::size_t i = 0; i < n; ++i) {
      if (d.token_types[i] != kNormal) continue;
      if (is_byte_token(d.tokens[i])) {
        d.token_types[i] = kByte;
        continue;
      }
      auto it = rank.find(d.tokens[i]);
      double r = it != rank.end() ? static_cast<double>(it->second)
                                  : static_cast<double>(merges.size() + i);
      d.scores[i] = static_cast<float>(-r - 1.0);
    }
    d.add_space_prefix = adds_space_prefix(normalizer) || adds_space_prefix(pre);
    if (tok.unk_id()) {
      d.unk_id = *tok.unk_id();
      d.token_types[static_cast<std::size_t>(*tok.unk_id())] = kUnknown;
    }
  }
  if (tok.bos_id()) d.bos_id = *tok.bos_id();
  if (tok.eos_id()) d.eos_id = *tok.eos_id();
  if (tok.pad_id()) d.pad_id = *tok.pad_id();
  for (TokenId id : tok.stop_ids()) {
    if (!tok.eos_id() || id != *tok.eos_id()) {
      d.eot_id = id;
      break;
    }
  }
  // What encode() adds around a text tells the BOS/EOS flags, whichever file set them.
  std::vector<TokenId> plain = tok.encode("a", false), with = tok.encode("a", true);
  d.add_bos_token = with.size() > plain.size() && tok.bos_id() && with.front() == *tok.bos_id();
  d.add_eos_token = with.size() > plain.size() && tok.eos_id() && with.back() == *tok.eos_id();
  d.chat_template = tok.chat_template();
  return d;
}

}  // namespace flagstone::engine
