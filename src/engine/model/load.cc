// Entry points: find the model's format, read its configuration, pick the architecture and
// build the decoder; and the tokenizer that goes with a model folder or GGUF file.
#include <cstring>
#include <filesystem>
#include <fstream>

#include "decoder.h"
#include "flagstone/engine/format/gguf.h"

namespace flagstone::engine {
namespace {

namespace fs = std::filesystem;

// The tokenizer.ggml.* keys of a GGUF file as the tokenizer builder takes them.
GgufTokenizerData gguf_tokenizer_data(const format::GgufFile& file) {
  GgufTokenizerData data;
  data.source = file.path();
  auto text = [&](const char* key) {
    const format::GgufValue* v = file.find(key);
    return v ? v->as_string() : std::string();
  };
  auto id = [&](const char* key) -> std::optional<int64_t> {
    const format::GgufValue* v = file.find(key);
    if (!v) return std::nullopt;
    return v->as_int();
  };
  auto flag = [&](const char* key) -> std::optional<bool> {
    const format::GgufValue* v = file.find(key);
    if (!v) return std::nullopt;
    return v->as_bool();
  };
  data.model = text("tokenizer.ggml.model");
  data.pre = text("tokenizer.ggml.pre");
  if (const auto* v = file.find("tokenizer.ggml.tokens")) data.tokens = v->as_string_array();
  if (const auto* v = file.find("tokenizer.ggml.scores")) {
    for (double s : v->as_float_array()) data.scores.push_back(static_cast<float>(s));
  }
  if (const auto* v = file.find("tokenizer.ggml.token_type")) {
    for (int64_t t : v->as_int_array()) data.token_types.push_back(static_cast<int32_t>(t));
  }
  if (const auto* v = file.find("tokenizer.ggml.merges")) data.merges = v->as_string_array();
  data.bos_id = id("tokenizer.ggml.bos_token_id");
  data.eos_id = id("tokenizer.ggml.eos_token_id");
  data.unk_id = id("tokenizer.ggml.unknown_token_id");
  data.pad_id = id("tokenizer.ggml.padding_token_id");
  data.eot_id = id("tokenizer.ggml.eot_token_id");
  data.add_bos_token = flag("tokenizer.ggml.add_bos_token");
  data.add_eos_token = flag("tokenizer.ggml.add_eos_token");
  data.add_space_prefix = flag("tokenizer.ggml.add_space_prefix");
  data.chat_template = text("tokenizer.chat_template");
  return data;
}

}  // namespace

bool is_gguf_file(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return false;
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  in.read(magic, 4);
  return in.gcount() == 4 && std::memcmp(magic, "GGUF", 4) == 0;
}

std::unique_ptr<Model> load_model(const std::string& path, const ModelOptions& options) {
  std::error_code ec;
  FS_CHECK(fs::exists(path, ec), kNotFound, "model '", path,
           "' does not exist (give a Hugging Face model folder or a .gguf file)");
  if (is_gguf_file(path)) {
    format::GgufFile file = format::GgufFile::open(path);
    ModelConfig config = model_config_from_gguf(file);
    const Architecture& arch = architecture_for(config);
    auto source = detail::open_gguf_source(file);
    return std::make_unique<detail::DecoderModel>(*source, std::move(config), arch, options);
  }
  FS_CHECK(fs::is_directory(path, ec), kFormat, "model '", path,
           "' is neither a GGUF file nor a folder with config.json and safetensors");
  ModelConfig config = load_hf_config(path);
  const Architecture& arch = architecture_for(config);
  auto source = detail::open_safetensors_source(path);
  return std::make_unique<detail::DecoderModel>(*source, std::move(config), arch, options);
}

Tokenizer load_model_tokenizer(const std::string& path) {
  std::error_code ec;
  FS_CHECK(fs::exists(path, ec), kNotFound, "model '", path,
           "' does not exist (give a Hugging Face model folder or a .gguf file)");
  if (is_gguf_file(path)) {
    return Tokenizer::from_gguf(gguf_tokenizer_data(format::GgufFile::open(path)));
  }
  FS_CHECK(fs::exists(fs::path(path) / "tokenizer.json", ec), kNotFound, "model folder '", path,
           "' has no tokenizer.json");
  return Tokenizer::from_folder(path);
}

}  // namespace flagstone::engine
