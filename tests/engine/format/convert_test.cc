// Conversion: a tiny random Hugging Face model converts to GGUF with llama.cpp's names, keys,
// types and q/k row order, and back to safetensors with the original values.
#include "flagstone/engine/format/convert.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <random>

#include "engine/format/test_util.h"
#include "flagstone/base/half.h"
#include "flagstone/engine/format/gguf.h"
#include "flagstone/engine/format/quant.h"
#include "flagstone/engine/format/safetensors.h"
#include "flagstone/engine/model_config.h"

namespace flagstone::engine::format {
namespace {

using testing::ScratchDir;

constexpr int64_t kHidden = 64, kInter = 96, kLayers = 2, kHeads = 4, kKvHeads = 2, kHeadDim = 16,
                  kVocab = 40;

struct TinyModel {
  std::map<std::string, std::vector<float>> values;
  std::map<std::string, Shape> shapes;
};

// Writes a random model of `model_type` into `folder` (f32, or bf16 when asked).
TinyModel write_tiny_model(const std::string& folder, const std::string& model_type,
                           bool bf16 = false, bool tied = false) {
  std::string rope =
      model_type == "llama"
          ? R"("rope_scaling":{"rope_type":"llama3","factor":8.0,"low_freq_factor":1.0,)"
            R"("high_freq_factor":4.0,"original_max_position_embeddings":32},)"
          : "";
  testing::write_text(
      folder + "/config.json",
      std::string(R"({"architectures":["X"],"model_type":")") + model_type +
          R"(","hidden_size":64,"intermediate_size":96,"num_hidden_layers":2,)"
          R"("num_attention_heads":4,"num_key_value_heads":2,"head_dim":16,"vocab_size":40,)"
          R"("max_position_embeddings":128,"rms_norm_eps":1e-5,"rope_theta":10000.0,)" +
          rope + R"("bos_token_id":1,"eos_token_id":2,"tie_word_embeddings":)" +
          (tied ? "true" : "false") + "}");
  TinyModel model;
  std::mt19937 gen(42);
  std::normal_distribution<float> dist(0.0f, 0.5f);
  auto add = [&](const std::string& name, Shape shape) {
    std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
    for (float& x : v) x = dist(gen);
    if (bf16) {
      for (float& x : v) x = static_cast<float>(BFloat16(x));  // exactly representable
    }
    model.values[name] = v;
    model.shapes[name] = shape;
  };
  add("model.embed_tokens.weight", {kVocab, kHidden});
  add("model.norm.weight", {kHidden});
  if (!tied) add("lm_head.weight", {kVocab, kHidden});
  for (int l = 0; l < kLayers; ++l) {
    std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {kHidden});
    add(p + "post_attention_layernorm.weight", {kHidden});
    add(p + "self_attn.q_proj.weight", {kHeads * kHeadDim, kHidden});
    add(p + "self_attn.k_proj.weight", {kKvHeads * kHeadDim, kHidden});
    add(p + "self_attn.v_proj.weight", {kKvHeads * kHeadDim, kHidden});
    add(p + "self_attn.o_proj.weight", {kHidden, kHeads * kHeadDim});
    add(p + "mlp.gate_proj.weight", {kInter, kHidden});
    add(p + "mlp.up_proj.weight", {kInter, kHidden});
    add(p + "mlp.down_proj.weight", {kHidden, kInter});
    if (model_type == "qwen2") {
      add(p + "self_attn.q_proj.bias", {kHeads * kHeadDim});
      add(p + "self_attn.k_proj.bias", {kKvHeads * kHeadDim});
      add(p + "self_attn.v_proj.bias", {kKvHeads * kHeadDim});
    }
    if (model_type == "qwen3") {
      add(p + "self_attn.q_norm.weight", {kHeadDim});
      add(p + "self_attn.k_norm.weight", {kHeadDim});
    }
  }
  SafetensorsWriter writer;
  for (const auto& [name, v] : model.values) {
    if (bf16) {
      std::vector<uint16_t> bits;
      for (float x : v) bits.push_back(BFloat16(x).bits);
      writer.add(name, DType::kBF16, model.shapes[name], std::as_bytes(std::span(bits)));
    } else {
      writer.add(name, DType::kF32, model.shapes[name], std::as_bytes(std::span(v)));
    }
  }
  std::vector<float> inv_freq(8, 1.0f);  // a buffer conversion must drop
  writer.add("model.layers.0.self_attn.rotary_emb.inv_freq", DType::kF32, {8},
             std::as_bytes(std::span(inv_freq)));
  writer.write(folder + "/model.safetensors");
  return model;
}

std::vector<float> gguf_values(const GgufFile& file, const std::string& name) {
  const GgufTensorInfo& info = file.info(name);
  std::vector<float> out(static_cast<size_t>(shape_numel(info.shape)));
  dequantize(*info.dtype, file.data(name).data(), out.data(), static_cast<int64_t>(out.size()));
  return out;
}

TEST(Convert, NamesFollowLlamaCpp) {
  EXPECT_EQ(gguf_tensor_name("model.embed_tokens.weight"), "token_embd.weight");
  EXPECT_EQ(gguf_tensor_name("model.layers.11.self_attn.o_proj.weight"),
            "blk.11.attn_output.weight");
  EXPECT_EQ(gguf_tensor_name("model.layers.0.post_attention_layernorm.weight"),
            "blk.0.ffn_norm.weight");
  EXPECT_EQ(gguf_tensor_name("model.layers.3.self_attn.k_norm.weight"), "blk.3.attn_k_norm.weight");
  EXPECT_EQ(gguf_tensor_name("model.layers.3.self_attn.rotary_emb.inv_freq"), "");
  EXPECT_EQ(hf_tensor_name("blk.7.ffn_down.weight"), "model.layers.7.mlp.down_proj.weight");
  EXPECT_EQ(hf_tensor_name("output.weight"), "lm_head.weight");
  EXPECT_FS_ERROR(gguf_tensor_name("model.layers.x.mlp.up_proj.weight"), kUnsupported, "layers.x");
  EXPECT_FS_ERROR(hf_tensor_name("blk.0.ffn_gate_exps.weight"), kUnsupported, "ffn_gate_exps");
}

TEST(Convert, LlamaToGgufF32AndBack) {
  ScratchDir dir;
  std::filesystem::create_directories(dir.file("hf"));
  TinyModel hf = write_tiny_model(dir.file("hf"), "llama");
  size_t calls = 0, last_total = 0;
  HfToGgufOptions options;
  options.type = DType::kF32;
  options.progress = [&](const std::string&, size_t done, size_t total) {
    ++calls;
    EXPECT_EQ(done, calls);
    last_total = total;
  };
  convert_hf_to_gguf(dir.file("hf"), dir.file("m.gguf"), options);
  GgufFile file = GgufFile::open(dir.file("m.gguf"));
  EXPECT_EQ(calls, last_total);
  EXPECT_EQ(calls, file.tensors().size());

  EXPECT_EQ(file.architecture(), "llama");
  EXPECT_EQ(file.get_string("general.name"), "hf");
  EXPECT_EQ(file.get_uint("general.file_type"), 0u);
  EXPECT_EQ(file.get_uint("llama.block_count"), 2u);
  EXPECT_EQ(file.get_uint("llama.embedding_length"), 64u);
  EXPECT_EQ(file.get_uint("llama.feed_forward_length"), 96u);
  EXPECT_EQ(file.get_uint("llama.attention.head_count"), 4u);
  EXPECT_EQ(file.get_uint("llama.attention.head_count_kv"), 2u);
  EXPECT_EQ(file.get_uint("llama.rope.dimension_count"), 16u);
  EXPECT_EQ(file.get_uint("llama.context_length"), 128u);
  EXPECT_EQ(file.get_uint("llama.vocab_size"), 40u);
  EXPECT_EQ(file.get("llama.rope.freq_base").type(), GgufValueType::kFloat32);
  EXPECT_FLOAT_EQ(static_cast<float>(file.get_float("llama.attention.layer_norm_rms_epsilon")),
                  1e-5f);
  EXPECT_EQ(file.get_uint("tokenizer.ggml.bos_token_id"), 1u);
  EXPECT_EQ(file.get_uint("tokenizer.ggml.eos_token_id"), 2u);
  // 3 global + 9 per layer + rope_freqs; inv_freq dropped.
  EXPECT_EQ(file.tensors().size(), 3u + 9u * 2u + 1u);
  EXPECT_EQ(file.tensors()[0].name, "rope_freqs.weight");  // llama.cpp writes it first too
  EXPECT_EQ(file.tensors()[1].name, "token_embd.weight");
  EXPECT_EQ(file.info("token_embd.weight").ne, (std::vector<uint64_t>{64, 40}));
  EXPECT_EQ(file.info("blk.1.ffn_down.weight").shape, (Shape{64, 96}));

  EXPECT_EQ(gguf_values(file, "blk.0.ffn_up.weight"),
            hf.values["model.layers.0.mlp.up_proj.weight"]);
  EXPECT_EQ(gguf_values(file, "output_norm.weight"), hf.values["model.norm.weight"]);

  // Rotary pairs: HF pairs row i with row i + head_dim/2 of a head (rotate_half); llama.cpp
  // pairs adjacent rows, so GGUF rows 2i and 2i+1 must be HF rows i and i + 8.
  for (auto [gguf, hf_name, heads] :
       {std::tuple{"blk.1.attn_q.weight", "model.layers.1.self_attn.q_proj.weight", kHeads},
        std::tuple{"blk.1.attn_k.weight", "model.layers.1.self_attn.k_proj.weight", kKvHeads}}) {
    std::vector<float> g = gguf_values(file, gguf);
    const std::vector<float>& h = hf.values[hf_name];
    for (int64_t head = 0; head < heads; ++head) {
      for (int64_t i = 0; i < kHeadDim / 2; ++i) {
        for (int64_t c = 0; c < kHidden; ++c) {
          int64_t base = head * kHeadDim;
          ASSERT_EQ(g[(base + 2 * i) * kHidden + c], h[(base + i) * kHidden + c]) << gguf;
          ASSERT_EQ(g[(base + 2 * i + 1) * kHidden + c], h[(base + i + 8) * kHidden + c]) << gguf;
        }
      }
    }
  }

  // llama3 rope: per-frequency divisors; with theta 1e4, head_dim 16 and an original context of
  // 32, wavelength 2*pi*1e4^(i/8) is below 32/4 for i = 0 (kept), between the bounds for i = 1
  // (interpolated), above 32 for i >= 2 (divided by the factor 8).
  std::vector<float> rope = gguf_values(file, "rope_freqs.weight");
  ASSERT_EQ(rope.size(), 8u);
  EXPECT_EQ(rope[0], 1.0f);
  double wavelen = 2 * std::numbers::pi * std::pow(1e4, 1.0 / 8);
  double smooth = (32 / wavelen - 1) / 3;
  EXPECT_NEAR(rope[1], 1 / ((1 - smooth) / 8 + smooth), 1e-5);
  for (size_t i = 2; i < 8; ++i) EXPECT_EQ(rope[i], 8.0f);

  // Back to Hugging Face: every tensor and the config come back.
  convert_gguf_to_hf(dir.file("m.gguf"), dir.file("back"));
  SafetensorsModel back = SafetensorsModel::open(dir.file("back"));
  EXPECT_EQ(back.tensor_names().size(), hf.values.size());
  for (const auto& [name, values] : hf.values) {
    SCOPED_TRACE(name);
    EXPECT_EQ(back.info(name).shape, hf.shapes[name]);
    EXPECT_EQ(back.load(name).to_vector<float>(), values);
  }
  ModelConfig c = load_hf_config(dir.file("back"));
  EXPECT_EQ(c.model_type, "llama");
  EXPECT_EQ(c.num_key_value_heads, 2);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.rope_scaling.type, "llama3");
  EXPECT_EQ(c.rope_scaling.factor, 8.0);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 32);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{2}));
}

TEST(Convert, QuantizedTypesFollowLlamaCppRules) {
  ScratchDir dir;
  std::filesystem::create_directories(dir.file("hf"));
  TinyModel hf = write_tiny_model(dir.file("hf"), "llama");
  for (DType type : {DType::kQ8_0, DType::kQ4_0}) {
    SCOPED_TRACE(dtype_name(type));
    HfToGgufOptions options;
    options.type = type;
    convert_hf_to_gguf(dir.file("hf"), dir.file("q.gguf"), options);
    GgufFile file = GgufFile::open(dir.file("q.gguf"));
    EXPECT_EQ(file.get_uint("general.file_type"), type == DType::kQ8_0 ? 7u : 2u);
    EXPECT_EQ(file.get_uint("general.quantization_version"), 2u);
    EXPECT_EQ(file.info("blk.0.ffn_gate.weight").dtype, type);
    EXPECT_EQ(file.info("blk.0.attn_norm.weight").dtype, DType::kF32);
    EXPECT_EQ(file.info("output.weight").dtype, DType::kQ8_0);  // q4_0 keeps output at q8_0
    // The stored blocks are exactly what quantizing the source rows gives.
    const std::vector<float>& up = hf.values["model.layers.1.mlp.up_proj.weight"];
    std::vector<std::byte> expected = quantize(type, up.data(), static_cast<int64_t>(up.size()));
    auto stored = file.data("blk.1.ffn_up.weight");
    EXPECT_TRUE(std::equal(stored.begin(), stored.end(), expected.begin(), expected.end()));
    convert_gguf_to_hf(dir.file("q.gguf"), dir.file("back"));
    SafetensorsModel back = SafetensorsModel::open(dir.file("back"));
    std::vector<float> q = back.load("model.layers.1.self_attn.q_proj.weight").to_vector<float>();
    const std::vector<float>& q_hf = hf.values["model.layers.1.self_attn.q_proj.weight"];
    for (size_t i = 0; i < q.size(); i += 32) {
      double amax = 0;
      for (size_t j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(double{q_hf[i + j]}));
      double bound = type == DType::kQ8_0 ? 0.57 * amax / 127 : 1.01 * amax / 8;
      for (size_t j = 0; j < 32; ++j) ASSERT_LE(std::fabs(q[i + j] - q_hf[i + j]), bound);
    }
  }
}

TEST(Convert, Bf16StaysBitExact) {
  ScratchDir dir;
  std::filesystem::create_directories(dir.file("hf"));
  TinyModel hf = write_tiny_model(dir.file("hf"), "qwen3", /*bf16=*/true, /*tied=*/true);
  HfToGgufOptions options;
  options.type = DType::kBF16;
  convert_hf_to_gguf(dir.file("hf"), dir.file("b.gguf"), options);
  GgufFile file = GgufFile::open(dir.file("b.gguf"));
  EXPECT_EQ(file.architecture(), "qwen3");
  EXPECT_EQ(file.get_uint("general.file_type"), 32u);
  EXPECT_FALSE(file.contains("output.weight"));
  EXPECT_EQ(file.info("blk.0.attn_k_norm.weight").dtype, DType::kF32);
  EXPECT_EQ(file.info("blk.0.attn_q.weight").dtype, DType::kBF16);
  // qwen3 is not permuted.
  EXPECT_EQ(gguf_values(file, "blk.0.attn_q.weight"),
            hf.values["model.layers.0.self_attn.q_proj.weight"]);
  ModelConfig c = model_config_from_gguf(file);
  EXPECT_TRUE(c.qk_norm);
  EXPECT_TRUE(c.tie_word_embeddings);
}

TEST(Convert, Qwen2BiasesAndErrors) {
  ScratchDir dir;
  std::filesystem::create_directories(dir.file("hf"));
  TinyModel hf = write_tiny_model(dir.file("hf"), "qwen2");
  convert_hf_to_gguf(dir.file("hf"), dir.file("q.gguf"));  // default f16
  GgufFile file = GgufFile::open(dir.file("q.gguf"));
  EXPECT_EQ(file.info("blk.1.attn_q.weight").dtype, DType::kF16);
  EXPECT_EQ(file.info("blk.1.attn_q.bias").dtype, DType::kF32);
  EXPECT_EQ(gguf_values(file, "blk.1.attn_k.bias"),
            hf.values["model.layers.1.self_attn.k_proj.bias"]);
  EXPECT_TRUE(model_config_from_gguf(file).attention_bias);

  HfToGgufOptions bad_type;
  bad_type.type = DType::kI8;
  EXPECT_FS_ERROR(convert_hf_to_gguf(dir.file("hf"), dir.file("x.gguf"), bad_type), kUnsupported,
                  "i8");
  testing::write_text(dir.file("hf/config.json"),
                      R"({"model_type":"gpt2","hidden_size":64,"intermediate_size":96,)"
                      R"("num_hidden_layers":2,"num_attention_heads":4,"vocab_size":40})");
  EXPECT_FS_ERROR(convert_hf_to_gguf(dir.file("hf"), dir.file("x.gguf")), kUnsupported, "gpt2");
  EXPECT_FALSE(std::filesystem::exists(dir.file("x.gguf")));
}

}  // namespace
}  // namespace flagstone::engine::format
