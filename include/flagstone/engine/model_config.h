// The hyper-parameters of a decoder-only transformer, read from a Hugging Face folder
// (config.json + generation_config.json) or from GGUF metadata (llama.*, qwen2.*, qwen3.* keys).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace flagstone::engine {

namespace format {
class GgufFile;
}

struct RopeScaling {
  // "" (none), "linear", "dynamic", "llama3", "yarn"; or "rope_freqs" for GGUF files that carry
  // the per-frequency divisors precomputed in a rope_freqs.weight tensor (llama.cpp's llama3).
  std::string type;
  double factor = 1.0;
  // llama3: wavelengths above original/low_freq_factor are divided by `factor`, those below
  // original/high_freq_factor are kept, and the band between is interpolated.
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 0;
  // yarn
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  std::optional<double> attention_factor;
};

struct GenerationDefaults {
  bool do_sample = false;
  std::optional<double> temperature;
  std::optional<int64_t> top_k;
  std::optional<double> top_p;
  std::optional<double> min_p;
  std::optional<double> repetition_penalty;
  std::optional<int64_t> max_new_tokens;
};

struct ModelConfig {
  std::vector<std::string> architectures;  // "LlamaForCausalLM"...
  std::string model_type;                  // "llama", "mistral", "qwen2", "qwen3"
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;  // defaults to num_attention_heads
  int64_t head_dim = 0;             // defaults to hidden_size / num_attention_heads
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // q/k/v projections have biases (always true for qwen2)
  bool qk_norm = false;         // per-head RMSNorm of q and k (qwen3)
  std::optional<int64_t> sliding_window;
  std::string torch_dtype;  // "bfloat16"... as saved; empty when absent
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;  // config.json's, replaced by generation_config.json's
  std::optional<int64_t> pad_token_id;
  GenerationDefaults generation;
  // Where it came from, for error messages ("/models/x/config.json", "model.gguf").
  std::string source;

  // Checks the values are usable (positive sizes, heads dividing evenly...); kFormat naming the
  // source and the key otherwise.
  void validate() const;
  // The config.json text of this configuration (used by GGUF -> safetensors conversion).
  std::string to_hf_json() const;
};

// Parses config.json text; `source` names the file in errors. Does not validate().
ModelConfig parse_hf_config(std::string_view json_text, const std::string& source);
// Applies generation_config.json text (eos ids, sampling defaults) to `config`.
void apply_generation_config(ModelConfig* config, std::string_view json_text,
                             const std::string& source);
// Reads `folder`/config.json and, when present, `folder`/generation_config.json; validates.
ModelConfig load_hf_config(const std::string& folder);
// Reads the architecture's keys of a GGUF file (plus tokenizer.ggml.* token ids); validates.
ModelConfig model_config_from_gguf(const format::GgufFile& file);

}  // namespace flagstone::engine
