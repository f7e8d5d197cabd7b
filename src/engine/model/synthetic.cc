// Synthetic models: preset configurations and a weight source that serves every tensor from one
// seeded pool of random values, so loading runs through the same path as a real checkpoint.
#include "flagstone/engine/model/synthetic.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "decoder.h"
#include "flagstone/engine/format/quant.h"

namespace flagstone::engine {
namespace {

ModelConfig llama_base() {
  ModelConfig c;
  c.architectures = {"LlamaForCausalLM"};
  c.model_type = "llama";
  c.num_attention_heads = 32;
  c.num_key_value_heads = 8;
  c.vocab_size = 128256;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 500000.0;
  c.bos_token_id = 128000;
  c.eos_token_ids = {128001};
  c.torch_dtype = "bfloat16";
  return c;
}

ModelConfig make_preset(std::string_view preset) {
  if (preset == "llama-1b") {
    // meta-llama/Llama-3.2-1B's config.json.
    ModelConfig c = llama_base();
    c.hidden_size = 2048;
    c.intermediate_size = 8192;
    c.num_hidden_layers = 16;
    c.head_dim = 64;
    c.max_position_embeddings = 131072;
    c.tie_word_embeddings = true;
    c.rope_scaling.type = "llama3";
    c.rope_scaling.factor = 32.0;
    c.rope_scaling.low_freq_factor = 1.0;
    c.rope_scaling.high_freq_factor = 4.0;
    c.rope_scaling.original_max_position_embeddings = 8192;
    return c;
  }
  if (preset == "llama-8b") {
    // meta-llama/Meta-Llama-3-8B's config.json.
    ModelConfig c = llama_base();
    c.hidden_size = 4096;
    c.intermediate_size = 14336;
    c.num_hidden_layers = 32;
    c.head_dim = 128;
    c.max_position_embeddings = 8192;
    return c;
  }
  if (preset == "qwen2-0.5b") {
    // Qwen/Qwen2.5-0.5B's config.json.
    ModelConfig c;
    c.architectures = {"Qwen2ForCausalLM"};
    c.model_type = "qwen2";
    c.hidden_size = 896;
    c.intermediate_size = 4864;
    c.num_hidden_layers = 24;
    c.num_attention_heads = 14;
    c.num_key_value_heads = 2;
    c.head_dim = 64;
    c.vocab_size = 151936;
    c.max_position_embeddings = 32768;
    c.rms_norm_eps = 1e-6;
    c.rope_theta = 1000000.0;
    c.tie_word_embeddings = true;
    c.attention_bias = true;
    c.eos_token_ids = {151643};
    c.torch_dtype = "bfloat16";
    return c;
  }
  if (preset == "tiny") {
    ModelConfig c = llama_base();
    c.hidden_size = 64;
    c.intermediate_size = 128;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.head_dim = 16;
    c.vocab_size = 256;
    c.max_position_embeddings = 1024;
    c.bos_token_id = 1;
    c.eos_token_ids = {2};
    return c;
  }
  std::string names;
  for (const std::string& name : synthetic_presets()) names += (names.empty() ? "" : ", ") + name;
  throw_error(ErrorCategory::kNotFound, "no synthetic model named '", preset,
              "' (available: ", names, ")");
}

// splitmix64: fast, and good enough to make weights look unstructured.
uint64_t next_random(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

std::vector<std::byte> random_values(DType dtype, int64_t count, float center, float spread,
                                     uint64_t seed) {
  std::vector<float> values(static_cast<size_t>(count));
  uint64_t state = seed;
  for (float& v : values) {
    double u = static_cast<double>(next_random(state) >> 11) * 0x1.0p-53;  // [0, 1)
    v = center + spread * static_cast<float>(2.0 * u - 1.0);
  }
  if (dtype == DType::kF32) {
    auto bytes = std::as_bytes(std::span(values));
    return {bytes.begin(), bytes.end()};
  }
  return format::quantize(dtype, values.data(), count);
}

// Matrices read windows of `matrices_` (in the stored dtype, starting at whole blocks so
// that different tensors see different values); 1-D tensors (norms, biases) read `vectors_`.
class SyntheticSource : public detail::WeightSource {
 public:
  SyntheticSource(const ModelConfig& c, DType weight_dtype, uint64_t seed)
      : path_(c.source), weight_dtype_(weight_dtype) {
    const int64_t h = c.hidden_size, d = c.head_dim, q = c.num_attention_heads * d,
                  kv = c.num_key_value_heads * d, ff = c.intermediate_size;
    shapes_["model.embed_tokens.weight"] = {c.vocab_size, h};
    shapes_["model.norm.weight"] = {h};
    if (!c.tie_word_embeddings) shapes_["lm_head.weight"] = {c.vocab_size, h};
    for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
      std::string p = "model.layers." + std::to_string(l) + ".";
      shapes_[p + "input_layernorm.weight"] = {h};
      shapes_[p + "post_attention_layernorm.weight"] = {h};
      shapes_[p + "self_attn.q_proj.weight"] = {q, h};
      shapes_[p + "self_attn.k_proj.weight"] = {kv, h};
      shapes_[p + "self_attn.v_proj.weight"] = {kv, h};
      shapes_[p + "self_attn.o_proj.weight"] = {h, q};
      shapes_[p + "mlp.gate_proj.weight"] = {ff, h};
      shapes_[p + "mlp.up_proj.weight"] = {ff, h};
      shapes_[p + "mlp.down_proj.weight"] = {h, ff};
      if (c.attention_bias || c.model_type == "qwen2") {
        shapes_[p + "self_attn.q_proj.bias"] = {q};
        shapes_[p + "self_attn.k_proj.bias"] = {kv};
        shapes_[p + "self_attn.v_proj.bias"] = {kv};
      }
      if (c.qk_norm || c.model_type == "qwen3") {
        shapes_[p + "self_attn.q_norm.weight"] = {d};
        shapes_[p + "self_attn.k_norm.weight"] = {d};
      }
    }
    int64_t largest_matrix = 0, longest_vector = 0;
    for (const auto& [name, shape] : shapes_) {
      if (shape.size() == 1)
        longest_vector = std::max(longest_vector, shape[0]);
      else
        largest_matrix = std::max(largest_matrix, shape_numel(shape));
    }
    // Extra blocks so that windows can start at different offsets.
    const int64_t block = dtype_info(weight_dtype).block_elements;
    const int64_t extra = 64 * std::max<int64_t>(block, 32);
    // Uniform with the standard deviation of a trained layer's weights (about 1/sqrt(fan-in)).
    float spread = 1.7f / static_cast<float>(std::sqrt(static_cast<double>(h)));
    matrices_ = random_values(weight_dtype, largest_matrix + extra, 0.0f, spread, seed);
    vector_dtype_ = is_quantized(weight_dtype) ? DType::kF32 : weight_dtype;
    vectors_ = random_values(vector_dtype_, longest_vector, 1.0f, 0.1f, seed ^ 0x5EEDull);
    matrix_block_bytes_ = dtype_info(weight_dtype).block_bytes;
    window_blocks_ = extra / block;
  }

  WeightFormat format() const override { return WeightFormat::kHuggingFace; }
  const std::string& path() const override { return path_; }
  std::string native_name(const std::string& hf_name) const override { return hf_name; }
  bool contains(const std::string& name) const override { return shapes_.count(name) > 0; }
  DType dtype(const std::string& name) const override {
    return shape(name).size() == 1 ? vector_dtype_ : weight_dtype_;
  }
  Shape shape(const std::string& name) const override {
    auto it = shapes_.find(name);
    FS_CHECK(it != shapes_.end(), kNotFound, "synthetic model '", path_, "' has no tensor '", name,
             "'");
    return it->second;
  }
  std::span<const std::byte> bytes(const std::string& name) const override {
    const Shape s = shape(name);
    if (s.size() == 1) return std::span(vectors_).first(dtype_bytes(vector_dtype_, s[0]));
    size_t start = (std::hash<std::string>{}(name) % window_blocks_) * matrix_block_bytes_;
    return std::span(matrices_).subspan(start, dtype_bytes(weight_dtype_, shape_numel(s)));
  }

 private:
  std::string path_;
  DType weight_dtype_, vector_dtype_ = DType::kF32;
  std::map<std::string, Shape, std::less<>> shapes_;
  std::vector<std::byte> matrices_, vectors_;
  size_t matrix_block_bytes_ = 0;
  size_t window_blocks_ = 1;
};

}  // namespace

std::vector<std::string> synthetic_presets() {
  return {"llama-1b", "llama-8b", "qwen2-0.5b", "tiny"};
}

ModelConfig synthetic_config(std::string_view preset) {
  ModelConfig config = make_preset(preset);
  config.source = "synthetic:" + std::string(preset);
  config.validate();
  return config;
}

std::unique_ptr<Model> synthetic_model(const ModelConfig& config, DType weight_dtype,
                                       const ModelOptions& options, uint64_t seed) {
  FS_CHECK(weight_dtype == DType::kF32 || weight_dtype == DType::kF16 ||
               weight_dtype == DType::kBF16 || weight_dtype == DType::kQ8_0 ||
               weight_dtype == DType::kQ4_0,
           kInvalidArgument, "synthetic model '", config.source, "': weight dtype ",
           dtype_name(weight_dtype), " is not one of f32, f16, bf16, q8_0, q4_0");
  config.validate();
  const Architecture& arch = architecture_for(config);
  SyntheticSource source(config, weight_dtype, seed);
  ModelOptions o = options;
  if (!o.dtype && is_floating(weight_dtype) && !o.device.is_cpu() &&
      o.device.backend() != "opencl") {
    o.dtype = weight_dtype;
  }
  auto model = std::make_unique<detail::DecoderModel>(source, config, arch, o);
  return model;
}

}  // namespace flagstone::engine
