// Random weights with enough spread that logits differ clearly between tokens (so greedy
// choices are not near ties) and norms and biases differ from their neutral values.
#include "engine/model/tiny_models.h"

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include <unistd.h>
#include <nlohmann/json.hpp>

#include "flagstone/engine/format/convert.h"
#include "flagstone/engine/format/gguf.h"
#include "flagstone/engine/format/quant.h"
#include "flagstone/engine/format/safetensors.h"

namespace flagstone::engine::testing {
namespace {

namespace fs = std::filesystem;

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  FS_CHECK(out.good(), kIo, "cannot write ", path);
}

}  // namespace

const std::vector<std::string>& tiny_variants() {
  static const std::vector<std::string> variants{"llama", "llama3", "mistral", "qwen2", "qwen3"};
  return variants;
}

ScratchFolder::ScratchFolder(const std::string& tag) {
  static std::atomic<int> counter{0};
  path_ = (fs::temp_directory_path() / ("flagstone_" + tag + "_" + std::to_string(::getpid()) +
                                        "_" + std::to_string(counter++)))
              .string();
  fs::remove_all(path_);
  fs::create_directories(path_);
}

ScratchFolder::~ScratchFolder() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

std::string ScratchFolder::sub(const std::string& name) const {
  std::string path = path_ + "/" + name;
  fs::create_directories(path);
  return path;
}

std::string write_tiny_hf_model(const std::string& folder, const std::string& variant,
                                const TinyOptions& options) {
  const int64_t hidden = options.hidden, inter = options.intermediate, layers = 2,
                heads = options.heads, kv_heads = options.kv_heads, vocab = options.vocab;
  const DType dtype = options.dtype;
  int64_t head_dim = variant == "qwen3" ? 32 : hidden / heads;
  bool tied = variant == "llama3" || variant == "qwen2";
  bool bias = variant == "qwen2";
  bool qk_norm = variant == "qwen3";
  std::string model_type = variant == "llama3" ? "llama" : variant;

  nlohmann::ordered_json config = {{"model_type", model_type},
                                   {"hidden_size", hidden},
                                   {"intermediate_size", inter},
                                   {"num_hidden_layers", layers},
                                   {"num_attention_heads", heads},
                                   {"num_key_value_heads", kv_heads},
                                   {"head_dim", head_dim},
                                   {"vocab_size", vocab},
                                   {"max_position_embeddings", options.max_positions},
                                   {"rms_norm_eps", 1e-5},
                                   {"rope_theta", variant == "llama" ? 10000.0 : 500000.0},
                                   {"tie_word_embeddings", tied},
                                   {"bos_token_id", 1},
                                   {"eos_token_id", 2},
                                   {"torch_dtype", dtype == DType::kF32   ? "float32"
                                                   : dtype == DType::kF16 ? "float16"
                                                                          : "bfloat16"}};
  if (variant == "llama3") {
    // Short original context so that all three bands of the llama3 formula are exercised.
    config["rope_scaling"] = {{"rope_type", "llama3"},
                              {"factor", 8.0},
                              {"low_freq_factor", 1.0},
                              {"high_freq_factor", 4.0},
                              {"original_max_position_embeddings", 32}};
  }
  if (variant == "mistral") {
    config["use_sliding_window"] = options.sliding_window;
    config["sliding_window"] = 8;
  }
  if (variant == "qwen2") config["attention_bias"] = true;
  write_text(folder + "/config.json", config.dump(2));
  write_text(folder + "/generation_config.json",
             R"({"bos_token_id": 1, "eos_token_id": 2, "do_sample": false})");

  std::mt19937_64 gen(options.seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  format::SafetensorsWriter writer;
  auto add = [&](const std::string& name, const Shape& shape, float scale, float center) {
    std::vector<float> values(static_cast<size_t>(shape_numel(shape)));
    for (float& v : values) v = center + scale * normal(gen);
    std::vector<std::byte> bytes = format::quantize(dtype, values.data(), shape_numel(shape));
    writer.add(name, dtype, shape, bytes);
  };
  auto matrix = [&](const std::string& name, int64_t out, int64_t in) {
    add(name, {out, in}, 1.0f / std::sqrt(static_cast<float>(in)), 0.0f);
  };
  add("model.embed_tokens.weight", {vocab, hidden}, 1.0f, 0.0f);
  add("model.norm.weight", {hidden}, 0.1f, 1.0f);
  if (!tied) matrix("lm_head.weight", vocab, hidden);
  for (int64_t l = 0; l < layers; ++l) {
    std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {hidden}, 0.1f, 1.0f);
    add(p + "post_attention_layernorm.weight", {hidden}, 0.1f, 1.0f);
    matrix(p + "self_attn.q_proj.weight", heads * head_dim, hidden);
    matrix(p + "self_attn.k_proj.weight", kv_heads * head_dim, hidden);
    matrix(p + "self_attn.v_proj.weight", kv_heads * head_dim, hidden);
    matrix(p + "self_attn.o_proj.weight", hidden, heads * head_dim);
    if (bias) {
      add(p + "self_attn.q_proj.bias", {heads * head_dim}, 0.1f, 0.0f);
      add(p + "self_attn.k_proj.bias", {kv_heads * head_dim}, 0.1f, 0.0f);
      add(p + "self_attn.v_proj.bias", {kv_heads * head_dim}, 0.1f, 0.0f);
    }
    if (qk_norm) {
      add(p + "self_attn.q_norm.weight", {head_dim}, 0.1f, 1.0f);
      add(p + "self_attn.k_norm.weight", {head_dim}, 0.1f, 1.0f);
    }
    matrix(p + "mlp.gate_proj.weight", inter, hidden);
    matrix(p + "mlp.up_proj.weight", inter, hidden);
    matrix(p + "mlp.down_proj.weight", hidden, inter);
  }
  writer.set_metadata("format", "pt");
  writer.write(folder + "/model.safetensors");
  return folder;
}

std::string write_tiny_chat_model(const std::string& folder, uint64_t seed, int64_t hidden) {
  TinyOptions options;
  options.seed = seed;
  options.hidden = hidden;
  options.intermediate = hidden == 64 ? 160 : 2 * hidden;
  options.vocab = 900;
  write_tiny_hf_model(folder, "llama", options);
  const fs::path data = fs::path(FLAGSTONE_TEST_DATA) / "tokenizer" / "spm";
  for (const char* name : {"tokenizer.json", "tokenizer_config.json"})
    fs::copy_file(data / name, fs::path(folder) / name, fs::copy_options::overwrite_existing);
  return folder;
}

std::string write_tiny_gguf_model(const std::string& hf_folder, const std::string& gguf_path,
                                  DType type) {
  format::HfToGgufOptions options;
  options.type = type;
  options.name = "tiny";
  format::convert_hf_to_gguf(hf_folder, gguf_path, options);
  return gguf_path;
}

std::string write_tiny_chat_gguf(const std::string& hf_folder, const std::string& gguf_path,
                                 DType type) {
  const std::string plain = gguf_path + ".plain";
  write_tiny_gguf_model(hf_folder, plain, type);
  format::GgufWriter writer;
  {
    format::GgufFile file = format::GgufFile::open(plain);
    for (const auto& [key, value] : file.metadata()) writer.set(key, value);
    for (const format::GgufTensorInfo& t : file.tensors())
      writer.add_tensor(t.name, t.ggml_type, t.shape, file.data(t.name));
  }
  fs::remove(plain);
  const fs::path data = fs::path(FLAGSTONE_TEST_DATA) / "tokenizer" / "spm";
  std::ifstream vocab_file(data / "gguf_vocab.json");
  nlohmann::json vocab = nlohmann::json::parse(vocab_file);
  std::ifstream config_file(data / "tokenizer_config.json");
  nlohmann::json config = nlohmann::json::parse(config_file);
  using format::GgufValue;
  writer.set("tokenizer.ggml.model", GgufValue::string(vocab["model"]));
  writer.set("tokenizer.ggml.pre", GgufValue::string(vocab["pre"]));
  writer.set("tokenizer.ggml.tokens",
             GgufValue::string_array(vocab["tokens"].get<std::vector<std::string>>()));
  writer.set("tokenizer.ggml.scores", GgufValue::array(vocab["scores"].get<std::vector<float>>()));
  writer.set("tokenizer.ggml.token_type",
             GgufValue::array(vocab["token_types"].get<std::vector<int32_t>>()));
  writer.set("tokenizer.ggml.bos_token_id", GgufValue::scalar<uint32_t>(vocab["bos_id"]));
  writer.set("tokenizer.ggml.eos_token_id", GgufValue::scalar<uint32_t>(vocab["eos_id"]));
  writer.set("tokenizer.ggml.unknown_token_id", GgufValue::scalar<uint32_t>(vocab["unk_id"]));
  writer.set("tokenizer.ggml.add_bos_token", GgufValue::scalar<bool>(vocab["add_bos_token"]));
  writer.set("tokenizer.ggml.add_space_prefix", GgufValue::scalar<bool>(vocab["add_space_prefix"]));
  writer.set("tokenizer.chat_template", GgufValue::string(config["chat_template"]));
  writer.write(gguf_path);
  return gguf_path;
}

std::vector<TokenId> tiny_prompt(int64_t length, uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::uniform_int_distribution<TokenId> pick(3, static_cast<TokenId>(kTinyVocab - 1));
  std::vector<TokenId> ids{1};
  while (static_cast<int64_t>(ids.size()) < length) ids.push_back(pick(gen));
  return ids;
}

double relative_error(const std::vector<double>& a, const std::vector<double>& b) {
  FS_CHECK(a.size() == b.size(), kInvalidArgument, "relative_error: sizes ", a.size(), " and ",
           b.size());
  double diff = 0, norm = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff += (a[i] - b[i]) * (a[i] - b[i]);
    norm += b[i] * b[i];
  }
  return std::sqrt(diff) / std::sqrt(norm);
}

}  // namespace flagstone::engine::testing
