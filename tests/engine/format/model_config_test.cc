// Model configs: published Hugging Face config.json files parse to their documented values,
// GGUF metadata maps to the same struct, and wrong configs name the file and the key. Configs
// saved by transformers itself (tests/data/format) are checked when present.
#include "flagstone/engine/model_config.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/format/test_util.h"
#include "flagstone/engine/format/gguf.h"

namespace flagstone::engine {
namespace {

using format::GgufValue;
using format::testing::ScratchDir;

// The config.json of Llama-3.2-1B as published by Meta on the Hugging Face hub.
constexpr const char* kLlama32Config = R"({
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 128000, "eos_token_id": 128001, "head_dim": 64, "hidden_act": "silu",
  "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 8192,
  "max_position_embeddings": 131072, "mlp_bias": false, "model_type": "llama",
  "num_attention_heads": 32, "num_hidden_layers": 16, "num_key_value_heads": 8,
  "pretraining_tp": 1, "rms_norm_eps": 1e-05,
  "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "rope_theta": 500000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
  "transformers_version": "4.45.0.dev0", "use_cache": true, "vocab_size": 128256})";

// Qwen2.5-0.5B's config.json (no attention_bias key: Qwen2 always has q/k/v biases).
constexpr const char* kQwen25Config = R"({
  "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
  "eos_token_id": 151643, "hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02,
  "intermediate_size": 4864, "max_position_embeddings": 32768, "max_window_layers": 24,
  "model_type": "qwen2", "num_attention_heads": 14, "num_hidden_layers": 24,
  "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
  "sliding_window": 32768, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
  "transformers_version": "4.40.1", "use_cache": true, "use_sliding_window": false,
  "vocab_size": 151936})";

TEST(ModelConfig, ParsesLlama32) {
  ModelConfig c = parse_hf_config(kLlama32Config, "llama/config.json");
  c.validate();
  EXPECT_EQ(c.architectures, (std::vector<std::string>{"LlamaForCausalLM"}));
  EXPECT_EQ(c.model_type, "llama");
  EXPECT_EQ(c.hidden_size, 2048);
  EXPECT_EQ(c.intermediate_size, 8192);
  EXPECT_EQ(c.num_hidden_layers, 16);
  EXPECT_EQ(c.num_attention_heads, 32);
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.vocab_size, 128256);
  EXPECT_EQ(c.max_position_embeddings, 131072);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.rope_scaling.type, "llama3");
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 32.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.high_freq_factor, 4.0);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_FALSE(c.qk_norm);
  EXPECT_EQ(c.bos_token_id, 128000);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{128001}));
  EXPECT_EQ(c.torch_dtype, "bfloat16");
}

TEST(ModelConfig, ParsesQwen25AndDefaults) {
  ModelConfig c = parse_hf_config(kQwen25Config, "qwen/config.json");
  c.validate();
  EXPECT_EQ(c.head_dim, 64);  // 896 / 14
  EXPECT_TRUE(c.attention_bias);
  EXPECT_FALSE(c.sliding_window.has_value());  // use_sliding_window is false
  EXPECT_TRUE(c.rope_scaling.type.empty());
  // A minimal llama config takes the documented defaults.
  ModelConfig m = parse_hf_config(
      R"({"model_type":"llama","hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,)"
      R"("num_attention_heads":4,"vocab_size":100})",
      "min.json");
  EXPECT_EQ(m.num_key_value_heads, 4);
  EXPECT_EQ(m.head_dim, 16);
  EXPECT_DOUBLE_EQ(m.rope_theta, 10000.0);
  EXPECT_FALSE(m.tie_word_embeddings);
  EXPECT_TRUE(m.eos_token_ids.empty());
}

TEST(ModelConfig, GenerationConfigOverrides) {
  ScratchDir dir;
  format::testing::write_text(dir.file("config.json"), kLlama32Config);
  format::testing::write_text(
      dir.file("generation_config.json"),
      R"({"bos_token_id":128000,"do_sample":true,"eos_token_id":[128001,128008,128009],)"
      R"("temperature":0.6,"top_p":0.9,"transformers_version":"4.45.0.dev0"})");
  ModelConfig c = load_hf_config(dir.path().string());
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{128001, 128008, 128009}));
  EXPECT_TRUE(c.generation.do_sample);
  EXPECT_DOUBLE_EQ(*c.generation.temperature, 0.6);
  EXPECT_DOUBLE_EQ(*c.generation.top_p, 0.9);
  EXPECT_FALSE(c.generation.top_k.has_value());
}

TEST(ModelConfig, ErrorsNameFileAndKey) {
  const std::string base =
      R"("model_type":"llama","hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,)"
      R"("num_attention_heads":4,"vocab_size":100)";
  EXPECT_FS_ERROR(
      parse_hf_config(R"({"model_type":"llama","intermediate_size":128,"num_hidden_layers":2,)"
                      R"("num_attention_heads":4,"vocab_size":100})",
                      "a.json"),
      kFormat, "a.json", "hidden_size", "missing");
  EXPECT_FS_ERROR(parse_hf_config("{" + base + R"(,"num_key_value_heads":"two"})", "b.json"),
                  kFormat, "b.json", "num_key_value_heads", "integer");
  EXPECT_FS_ERROR(parse_hf_config("{" + base + R"(,"rms_norm_eps":"small"})", "c.json"), kFormat,
                  "c.json", "rms_norm_eps");
  EXPECT_FS_ERROR(parse_hf_config("{\"hidden_size\": 64,", "d.json"), kFormat, "d.json",
                  "not valid JSON");
  EXPECT_FS_ERROR(
      parse_hf_config("{" + base + R"(,"rope_scaling":{"rope_type":"llama3","factor":8.0}})",
                      "e.json"),
      kFormat, "e.json", "original_max_position_embeddings");
  ModelConfig bad = parse_hf_config("{" + base + R"(,"num_key_value_heads":3})", "f.json");
  EXPECT_FS_ERROR(bad.validate(), kFormat, "f.json", "num_key_value_heads");
  ModelConfig eos = parse_hf_config("{" + base + R"(,"eos_token_id":[5,100]})", "g.json");
  EXPECT_FS_ERROR(eos.validate(), kFormat, "g.json", "eos_token_id", "100");
  ScratchDir dir;
  EXPECT_FS_ERROR(load_hf_config(dir.path().string()), kNotFound, "config.json");
}

std::vector<std::byte> llama_gguf(bool with_eps) {
  format::GgufWriter w;
  w.set("general.architecture", GgufValue::string("llama"));
  w.set("llama.context_length", GgufValue::scalar<uint32_t>(131072));
  w.set("llama.embedding_length", GgufValue::scalar<uint32_t>(2048));
  w.set("llama.block_count", GgufValue::scalar<uint32_t>(16));
  w.set("llama.feed_forward_length", GgufValue::scalar<uint32_t>(8192));
  w.set("llama.attention.head_count", GgufValue::scalar<uint32_t>(32));
  w.set("llama.attention.head_count_kv", GgufValue::scalar<uint32_t>(8));
  w.set("llama.rope.freq_base", GgufValue::scalar<float>(500000.0f));
  if (with_eps) w.set("llama.attention.layer_norm_rms_epsilon", GgufValue::scalar<float>(1e-5f));
  w.set("llama.vocab_size", GgufValue::scalar<uint32_t>(128256));
  w.set("tokenizer.ggml.bos_token_id", GgufValue::scalar<uint32_t>(128000));
  w.set("tokenizer.ggml.eos_token_id", GgufValue::scalar<uint32_t>(128009));
  std::vector<float> freqs(32, 1.0f);
  w.add_tensor("rope_freqs.weight", DType::kF32, {32}, std::as_bytes(std::span(freqs)));
  return w.serialize();
}

TEST(ModelConfig, FromGgufMetadata) {
  auto file = format::GgufFile::parse(format::MappedFile::from_bytes("m.gguf", llama_gguf(true)));
  ModelConfig c = model_config_from_gguf(file);
  EXPECT_EQ(c.model_type, "llama");
  EXPECT_EQ(c.hidden_size, 2048);
  EXPECT_EQ(c.num_hidden_layers, 16);
  EXPECT_EQ(c.intermediate_size, 8192);
  EXPECT_EQ(c.num_attention_heads, 32);
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.vocab_size, 128256);
  EXPECT_EQ(c.max_position_embeddings, 131072);
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  EXPECT_FLOAT_EQ(static_cast<float>(c.rms_norm_eps), 1e-5f);
  EXPECT_EQ(c.rope_scaling.type, "rope_freqs");
  EXPECT_TRUE(c.tie_word_embeddings);  // no output.weight
  EXPECT_EQ(c.bos_token_id, 128000);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{128009}));

  auto missing =
      format::GgufFile::parse(format::MappedFile::from_bytes("m2.gguf", llama_gguf(false)));
  EXPECT_FS_ERROR(model_config_from_gguf(missing), kFormat, "m2.gguf",
                  "llama.attention.layer_norm_rms_epsilon");
}

// --- Configs saved by transformers (tools/fixtures/make_format_fixtures.py) --------------------

std::string fixture(const std::string& name) {
  return std::string(FLAGSTONE_TEST_DATA) + "/format/" + name;
}

void expect_matches(const ModelConfig& c, const nlohmann::json& e) {
  EXPECT_EQ(c.model_type, e["model_type"].get<std::string>());
  EXPECT_EQ(c.hidden_size, e["hidden_size"].get<int64_t>());
  EXPECT_EQ(c.intermediate_size, e["intermediate_size"].get<int64_t>());
  EXPECT_EQ(c.num_hidden_layers, e["num_hidden_layers"].get<int64_t>());
  EXPECT_EQ(c.num_attention_heads, e["num_attention_heads"].get<int64_t>());
  EXPECT_EQ(c.num_key_value_heads, e["num_key_value_heads"].get<int64_t>());
  EXPECT_EQ(c.head_dim, e["head_dim"].get<int64_t>());
  EXPECT_EQ(c.vocab_size, e["vocab_size"].get<int64_t>());
  EXPECT_EQ(c.max_position_embeddings, e["max_position_embeddings"].get<int64_t>());
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, e["rms_norm_eps"].get<double>());
  EXPECT_DOUBLE_EQ(c.rope_theta, e["rope_theta"].get<double>());
  EXPECT_EQ(c.tie_word_embeddings, e["tie_word_embeddings"].get<bool>());
}

TEST(ModelConfigFixtures, TransformersSavedConfigs) {
  if (!std::filesystem::exists(fixture("expected.json"))) {
    GTEST_SKIP() << "fixture " << fixture("expected.json")
                 << " missing: run tools/fixtures/make_format_fixtures.py";
  }
  std::ifstream in(fixture("expected.json"));
  nlohmann::json expected = nlohmann::json::parse(in);
  for (const auto& [name, e] : expected["configs"].items()) {
    SCOPED_TRACE(name);
    ModelConfig c = load_hf_config(fixture("config_" + name));
    expect_matches(c, e);
    EXPECT_EQ(c.qk_norm, name == "qwen3");
    if (name == "qwen2") {
      EXPECT_TRUE(c.attention_bias);
    }
  }
  const nlohmann::json& llama = expected["llama_sharded"]["config"];
  ModelConfig c = load_hf_config(fixture("llama_sharded"));
  expect_matches(c, llama);
  EXPECT_EQ(c.rope_scaling.type, llama["rope_type"].get<std::string>());
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, llama["rope_factor"].get<double>());
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings,
            llama["original_max_position_embeddings"].get<int64_t>());
  EXPECT_EQ(c.bos_token_id, llama["bos_token_id"].get<int64_t>());
  EXPECT_EQ(c.eos_token_ids, llama["eos_token_ids"].get<std::vector<int64_t>>());
  EXPECT_DOUBLE_EQ(*c.generation.temperature, llama["temperature"].get<double>());
  EXPECT_DOUBLE_EQ(*c.generation.top_p, llama["top_p"].get<double>());
  EXPECT_EQ(*c.generation.top_k, llama["top_k"].get<int64_t>());
  EXPECT_EQ(c.generation.do_sample, llama["do_sample"].get<bool>());
}

}  // namespace
}  // namespace flagstone::engine
