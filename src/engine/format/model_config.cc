// Model configuration from Hugging Face config.json / generation_config.json and from GGUF.
#include "flagstone/engine/model_config.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "flagstone/base/error.h"
#include "flagstone/engine/format/gguf.h"
#include "flagstone/engine/format/mapped_file.h"

namespace flagstone::engine {

namespace {

using nlohmann::json;

// Typed access to one JSON object with errors naming the file and the key.
class JsonFields {
 public:
  JsonFields(const json& object, const std::string& source) : object_(object), source_(source) {}

  bool has(const char* key) const {
    auto it = object_.find(key);
    return it != object_.end() && !it->is_null();
  }
  const json& at(const char* key) const { return *object_.find(key); }

  [[noreturn]] void fail(const char* key, const std::string& what) const {
    throw_error(ErrorCategory::kFormat, "config '", source_, "': key '", key, "' ", what);
  }

  int64_t integer(const char* key) const {
    if (!has(key)) fail(key, "is missing");
    const json& value = at(key);
    if (!value.is_number_integer()) fail(key, "must be an integer, got " + value.dump());
    if (value.is_number_unsigned() && value.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
      fail(key, "is out of range: " + value.dump());
    }
    return value.get<int64_t>();
  }
  int64_t integer(const char* key, int64_t fallback) const {
    return has(key) ? integer(key) : fallback;
  }
  std::optional<int64_t> optional_integer(const char* key) const {
    if (!has(key)) return std::nullopt;
    return integer(key);
  }
  double number(const char* key, double fallback) const {
    if (!has(key)) return fallback;
    const json& value = at(key);
    if (!value.is_number()) fail(key, "must be a number, got " + value.dump());
    return value.get<double>();
  }
  std::optional<double> optional_number(const char* key) const {
    if (!has(key)) return std::nullopt;
    return number(key, 0.0);
  }
  bool boolean(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    const json& value = at(key);
    if (!value.is_boolean()) fail(key, "must be true or false, got " + value.dump());
    return value.get<bool>();
  }
  std::string string(const char* key, const std::string& fallback) const {
    if (!has(key)) return fallback;
    const json& value = at(key);
    if (!value.is_string()) fail(key, "must be a string, got " + value.dump());
    return value.get<std::string>();
  }
  // An integer or a list of integers (eos_token_id).
  std::vector<int64_t> integer_list(const char* key) const {
    std::vector<int64_t> out;
    if (!has(key)) return out;
    const json& value = at(key);
    if (value.is_number_integer()) {
      out.push_back(value.get<int64_t>());
      return out;
    }
    if (!value.is_array()) fail(key, "must be an integer or a list of integers");
    for (const json& item : value) {
      if (!item.is_number_integer()) fail(key, "must be an integer or a list of integers");
      out.push_back(item.get<int64_t>());
    }
    return out;
  }

 private:
  const json& object_;
  const std::string& source_;
};

json parse_object(std::string_view text, const std::string& source) {
  json root;
  try {
    root = json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    throw_error(ErrorCategory::kFormat, "config '", source, "' is not valid JSON: ", e.what());
  }
  FS_CHECK(root.is_object(), kFormat, "config '", source, "' is not a JSON object");
  return root;
}

std::string read_text(const std::string& path) {
  auto file = format::MappedFile::open(path);
  return std::string(reinterpret_cast<const char*>(file->data()), file->size());
}

void parse_rope_scaling(const json& object, const std::string& source, RopeScaling* rope) {
  JsonFields fields(object, source);
  std::string type = fields.string("rope_type", fields.string("type", ""));
  if (type == "default") type = "";
  rope->type = type;
  rope->factor = fields.number("factor", 1.0);
  rope->low_freq_factor = fields.number("low_freq_factor", 1.0);
  rope->high_freq_factor = fields.number("high_freq_factor", 4.0);
  rope->original_max_position_embeddings = fields.integer("original_max_position_embeddings", 0);
  rope->beta_fast = fields.number("beta_fast", 32.0);
  rope->beta_slow = fields.number("beta_slow", 1.0);
  rope->attention_factor = fields.optional_number("attention_factor");
  if (type == "llama3") {
    if (!fields.has("factor")) fields.fail("rope_scaling.factor", "is missing for llama3 rope");
    if (rope->original_max_position_embeddings <= 0) {
      fields.fail("rope_scaling.original_max_position_embeddings",
                  "must be a positive integer for llama3 rope");
    }
  }
}

const char* hf_architecture_of(const std::string& model_type) {
  if (model_type == "llama") return "LlamaForCausalLM";
  if (model_type == "mistral") return "MistralForCausalLM";
  if (model_type == "qwen2") return "Qwen2ForCausalLM";
  if (model_type == "qwen3") return "Qwen3ForCausalLM";
  return "";
}

}  // namespace

ModelConfig parse_hf_config(std::string_view json_text, const std::string& source) {
  json root = parse_object(json_text, source);
  JsonFields fields(root, source);
  ModelConfig config;
  config.source = source;
  if (fields.has("architectures")) {
    const json& list = fields.at("architectures");
    if (!list.is_array()) fields.fail("architectures", "must be a list of strings");
    for (const json& item : list) {
      if (!item.is_string()) fields.fail("architectures", "must be a list of strings");
      config.architectures.push_back(item.get<std::string>());
    }
  }
  config.model_type = fields.string("model_type", "");
  if (config.model_type.empty()) fields.fail("model_type", "is missing");
  config.hidden_size = fields.integer("hidden_size");
  config.intermediate_size = fields.integer("intermediate_size");
  config.num_hidden_layers = fields.integer("num_hidden_layers");
  config.num_attention_heads = fields.integer("num_attention_heads");
  config.num_key_value_heads = fields.integer("num_key_value_heads", config.num_attention_heads);
  config.head_dim = fields.integer("head_dim", config.num_attention_heads > 0
                                                   ? config.hidden_size / config.num_attention_heads
                                                   : 0);
  config.vocab_size = fields.integer("vocab_size");
  config.max_position_embeddings = fields.integer("max_position_embeddings", 0);
  config.rms_norm_eps = fields.number("rms_norm_eps", 1e-6);
  config.rope_theta = fields.number("rope_theta", 10000.0);
  if (fields.has("rope_scaling")) {
    if (!fields.at("rope_scaling").is_object()) fields.fail("rope_scaling", "must be an object");
    parse_rope_scaling(fields.at("rope_scaling"), source, &config.rope_scaling);
  }
  // Newer transformers releases keep theta and scaling together under rope_parameters.
  if (fields.has("rope_parameters")) {
    const json& params = fields.at("rope_parameters");
    if (!params.is_object()) fields.fail("rope_parameters", "must be an object");
    parse_rope_scaling(params, source, &config.rope_scaling);
    config.rope_theta = JsonFields(params, source).number("rope_theta", config.rope_theta);
  }
  config.tie_word_embeddings = fields.boolean("tie_word_embeddings", false);
  config.attention_bias = fields.boolean("attention_bias", config.model_type == "qwen2");
  config.qk_norm = config.model_type == "qwen3";
  bool sliding = fields.boolean("use_sliding_window", config.model_type == "mistral");
  if (sliding) config.sliding_window = fields.optional_integer("sliding_window");
  config.torch_dtype = fields.string("torch_dtype", fields.string("dtype", ""));
  config.bos_token_id = fields.optional_integer("bos_token_id");
  config.eos_token_ids = fields.integer_list("eos_token_id");
  config.pad_token_id = fields.optional_integer("pad_token_id");
  return config;
}

void apply_generation_config(ModelConfig* config, std::string_view json_text,
                             const std::string& source) {
  json root = parse_object(json_text, source);
  JsonFields fields(root, source);
  std::vector<int64_t> eos = fields.integer_list("eos_token_id");
  if (!eos.empty()) config->eos_token_ids = eos;
  if (auto bos = fields.optional_integer("bos_token_id")) config->bos_token_id = bos;
  if (auto pad = fields.optional_integer("pad_token_id")) config->pad_token_id = pad;
  GenerationDefaults& gen = config->generation;
  gen.do_sample = fields.boolean("do_sample", gen.do_sample);
  if (auto v = fields.optional_number("temperature")) gen.temperature = v;
  if (auto v = fields.optional_integer("top_k")) gen.top_k = v;
  if (auto v = fields.optional_number("top_p")) gen.top_p = v;
  if (auto v = fields.optional_number("min_p")) gen.min_p = v;
  if (auto v = fields.optional_number("repetition_penalty")) gen.repetition_penalty = v;
  if (auto v = fields.optional_integer("max_new_tokens")) gen.max_new_tokens = v;
}

ModelConfig load_hf_config(const std::string& folder) {
  namespace fs = std::filesystem;
  fs::path config_path = fs::path(folder) / "config.json";
  std::error_code ec;
  FS_CHECK(fs::exists(config_path, ec), kNotFound, "model folder '", folder,
           "' has no config.json");
  ModelConfig config = parse_hf_config(read_text(config_path.string()), config_path.string());
  fs::path generation_path = fs::path(folder) / "generation_config.json";
  if (fs::exists(generation_path, ec)) {
    apply_generation_config(&config, read_text(generation_path.string()), generation_path.string());
  }
  config.validate();
  return config;
}

void ModelConfig::validate() const {
  auto fail = [&](const char* key, const std::string& what) {
    throw_error(ErrorCategory::kFormat, "config '", source, "': ", key, " ", what);
  };
  auto positive = [&](const char* key, int64_t value) {
    if (value <= 0) fail(key, "must be positive, got " + std::to_string(value));
  };
  positive("hidden_size", hidden_size);
  positive("intermediate_size", intermediate_size);
  positive("num_hidden_layers", num_hidden_layers);
  positive("num_attention_heads", num_attention_heads);
  positive("num_key_value_heads", num_key_value_heads);
  positive("head_dim", head_dim);
  positive("vocab_size", vocab_size);
  if (num_attention_heads % num_key_value_heads != 0) {
    fail("num_key_value_heads", std::to_string(num_key_value_heads) +
                                    " does not divide num_attention_heads " +
                                    std::to_string(num_attention_heads));
  }
  if (head_dim % 2 != 0) fail("head_dim", "must be even for rotary embeddings");
  if (!(rms_norm_eps > 0.0)) fail("rms_norm_eps", "must be positive");
  if (!(rope_theta > 0.0)) fail("rope_theta", "must be positive");
  if (!rope_scaling.type.empty() && !(rope_scaling.factor > 0.0)) {
    fail("rope_scaling.factor", "must be positive");
  }
  for (int64_t id : eos_token_ids) {
    if (id < 0 || id >= vocab_size) {
      fail("eos_token_id",
           std::to_string(id) + " is outside the vocabulary of " + std::to_string(vocab_size));
    }
  }
  if (bos_token_id && (*bos_token_id < 0 || *bos_token_id >= vocab_size)) {
    fail("bos_token_id", std::to_string(*bos_token_id) + " is outside the vocabulary of " +
                             std::to_string(vocab_size));
  }
}

std::string ModelConfig::to_hf_json() const {
  json root;
  std::vector<std::string> archs = architectures;
  if (archs.empty() && *hf_architecture_of(model_type) != '\0') {
    archs.push_back(hf_architecture_of(model_type));
  }
  root["architectures"] = archs;
  root["model_type"] = model_type;
  root["hidden_size"] = hidden_size;
  root["intermediate_size"] = intermediate_size;
  root["num_hidden_layers"] = num_hidden_layers;
  root["num_attention_heads"] = num_attention_heads;
  root["num_key_value_heads"] = num_key_value_heads;
  root["head_dim"] = head_dim;
  root["vocab_size"] = vocab_size;
  root["max_position_embeddings"] = max_position_embeddings;
  root["rms_norm_eps"] = rms_norm_eps;
  root["rope_theta"] = rope_theta;
  if (rope_scaling.type.empty() || rope_scaling.type == "rope_freqs") {
    root["rope_scaling"] = nullptr;
  } else {
    json rope = {{"rope_type", rope_scaling.type}, {"factor", rope_scaling.factor}};
    if (rope_scaling.type == "llama3") {
      rope["low_freq_factor"] = rope_scaling.low_freq_factor;
      rope["high_freq_factor"] = rope_scaling.high_freq_factor;
    }
    if (rope_scaling.original_max_position_embeddings > 0) {
      rope["original_max_position_embeddings"] = rope_scaling.original_max_position_embeddings;
    }
    root["rope_scaling"] = rope;
  }
  root["tie_word_embeddings"] = tie_word_embeddings;
  if (model_type != "qwen2") root["attention_bias"] = attention_bias;
  if (sliding_window) {
    root["sliding_window"] = *sliding_window;
    if (model_type == "qwen2") root["use_sliding_window"] = true;
  }
  if (!torch_dtype.empty()) root["torch_dtype"] = torch_dtype;
  if (bos_token_id) root["bos_token_id"] = *bos_token_id;
  if (eos_token_ids.size() == 1) root["eos_token_id"] = eos_token_ids[0];
  if (eos_token_ids.size() > 1) root["eos_token_id"] = eos_token_ids;
  if (pad_token_id) root["pad_token_id"] = *pad_token_id;
  root["hidden_act"] = "silu";
  return root.dump(2) + "\n";
}

ModelConfig model_config_from_gguf(const format::GgufFile& file) {
  ModelConfig config;
  config.source = file.path();
  const std::string arch = file.architecture();
  const std::string p = arch + ".";
  config.model_type = arch;
  if (*hf_architecture_of(arch) != '\0') config.architectures.push_back(hf_architecture_of(arch));
  auto integer = [&](const std::string& key) {
    uint64_t value = file.get_uint(key);
    FS_CHECK(value <= static_cast<uint64_t>(INT64_MAX), kFormat, "GGUF file '", file.path(),
             "': metadata key '", key, "' is out of range");
    return static_cast<int64_t>(value);
  };
  auto integer_or = [&](const std::string& key, int64_t fallback) {
    return file.find(key) ? integer(key) : fallback;
  };
  config.hidden_size = integer(p + "embedding_length");
  config.num_hidden_layers = integer(p + "block_count");
  config.intermediate_size = integer(p + "feed_forward_length");
  config.num_attention_heads = integer(p + "attention.head_count");
  config.num_key_value_heads =
      integer_or(p + "attention.head_count_kv", config.num_attention_heads);
  config.head_dim = integer_or(
      p + "attention.key_length",
      config.num_attention_heads > 0 ? config.hidden_size / config.num_attention_heads : 0);
  config.max_position_embeddings = integer_or(p + "context_length", 0);
  config.rms_norm_eps = file.get_float(p + "attention.layer_norm_rms_epsilon");
  config.rope_theta =
      file.find(p + "rope.freq_base") ? file.get_float(p + "rope.freq_base") : 10000.0;
  if (file.find(p + "vocab_size")) {
    config.vocab_size = integer(p + "vocab_size");
  } else if (const format::GgufValue* tokens = file.find("tokenizer.ggml.tokens")) {
    config.vocab_size = static_cast<int64_t>(tokens->size());
  } else if (file.contains("token_embd.weight")) {
    config.vocab_size = file.info("token_embd.weight").shape.front();
  }
  if (file.find(p + "rope.scaling.type")) {
    std::string type = file.get_string(p + "rope.scaling.type");
    if (type != "none") config.rope_scaling.type = type;
    if (file.find(p + "rope.scaling.factor")) {
      config.rope_scaling.factor = file.get_float(p + "rope.scaling.factor");
    }
    config.rope_scaling.original_max_position_embeddings =
        integer_or(p + "rope.scaling.original_context_length", 0);
  }
  if (file.contains("rope_freqs.weight")) config.rope_scaling.type = "rope_freqs";
  config.tie_word_embeddings = !file.contains("output.weight");
  config.attention_bias = file.contains("blk.0.attn_q.bias");
  config.qk_norm = file.contains("blk.0.attn_q_norm.weight");
  if (file.find("tokenizer.ggml.bos_token_id")) {
    config.bos_token_id = integer("tokenizer.ggml.bos_token_id");
  }
  if (file.find("tokenizer.ggml.eos_token_id")) {
    config.eos_token_ids.push_back(integer("tokenizer.ggml.eos_token_id"));
  }
  if (file.find("tokenizer.ggml.eot_token_id")) {
    int64_t eot = integer("tokenizer.ggml.eot_token_id");
    if (config.eos_token_ids.empty() || config.eos_token_ids[0] != eot) {
      config.eos_token_ids.push_back(eot);
    }
  }
  if (file.find("tokenizer.ggml.padding_token_id")) {
    config.pad_token_id = integer("tokenizer.ggml.padding_token_id");
  }
  config.validate();
  return config;
}

}  // namespace flagstone::engine
