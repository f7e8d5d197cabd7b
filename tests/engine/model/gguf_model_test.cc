// GGUF models: the tiny models converted to GGUF (f32, f16, q8_0) load with llama.cpp's names,
// q/k row order and tied heads, and match the float64 reference of the Hugging Face folder.
#include <gtest/gtest.h>

#include <tuple>

#include "engine/model/tiny_models.h"
#include "flagstone/engine/generate/generator.h"
#include "flagstone/engine/model/model.h"
#include "support/devices.h"

namespace flagstone::engine {
namespace {

using testing::relative_error;
using testing::ScratchFolder;

std::vector<double> prompt_logits(Model& model, const std::vector<TokenId>& prompt) {
  KvCache cache = model.new_cache(1, 32);
  std::vector<int64_t> ids(prompt.begin(), prompt.end());
  auto n = static_cast<int64_t>(ids.size());
  return model.forward(Tensor::from_vector(ids, {1, n}), cache, true).to_double_vector();
}

using Param = std::tuple<std::string, Device>;

class GgufModelTest : public ::testing::TestWithParam<Param> {
 protected:
  void SetUp() override {
    variant_ = std::get<0>(GetParam());
    device_ = std::get<1>(GetParam());
    // GGUF's llama architecture (which mistral is written as) has no sliding window.
    testing::TinyOptions tiny;
    tiny.sliding_window = false;
    testing::write_tiny_hf_model(folder_.path(), variant_, tiny);
    ModelOptions reference;
    reference.reference = true;
    hf_reference_ = load_model(folder_.path(), reference);
  }

  std::string gguf(DType type) {
    std::string path = folder_.path() + "/model-" + std::string(dtype_name(type)) + ".gguf";
    return testing::write_tiny_gguf_model(folder_.path(), path, type);
  }

  std::unique_ptr<Model> load(const std::string& path) {
    ModelOptions options;
    options.device = device_;
    options.dtype = DType::kF32;
    return load_model(path, options);
  }

  std::string variant_;
  Device device_;
  ScratchFolder folder_{"gguf_model"};
  std::unique_ptr<Model> hf_reference_;
};

TEST_P(GgufModelTest, F32FileMatchesHuggingFaceReference) {
  std::string path = gguf(DType::kF32);
  EXPECT_TRUE(is_gguf_file(path));
  auto model = load(path);
  EXPECT_EQ(model->info().format, "gguf");
  std::vector<TokenId> prompt = testing::tiny_prompt(12);
  EXPECT_LT(relative_error(prompt_logits(*model, prompt), prompt_logits(*hf_reference_, prompt)),
            1e-4);
  Generator ours(*model, nullptr, 32), theirs(*hf_reference_, nullptr, 32);
  GenerationOptions options;
  options.max_new_tokens = 12;
  EXPECT_EQ(ours.generate(prompt, options).tokens, theirs.generate(prompt, options).tokens);
}

TEST_P(GgufModelTest, F16FileMatchesWithinF16Rounding) {
  auto model = load(gguf(DType::kF16));
  std::vector<TokenId> prompt = testing::tiny_prompt(12);
  // Weights rounded to f16 (11 significant bits), activations in f32.
  EXPECT_LT(relative_error(prompt_logits(*model, prompt), prompt_logits(*hf_reference_, prompt)),
            1e-2);
}

TEST_P(GgufModelTest, Q8FileKeepsQuantizedWeights) {
  std::string path = gguf(DType::kQ8_0);
  auto model = load(path);
  EXPECT_NE(model->info().weight_types.find("q8_0"), std::string::npos)
      << model->info().weight_types;
  ModelOptions reference;
  reference.reference = true;
  auto file_reference = load_model(path, reference);
  EXPECT_EQ(file_reference->info().weight_types.find("q8_0"), std::string::npos);
  std::vector<TokenId> prompt = testing::tiny_prompt(12);
  std::vector<double> got = prompt_logits(*model, prompt);
  // Against the same weights dequantized to f64: what remains is the kernel's arithmetic, which
  // may round activations to 8 bits as ggml's q8_0 dot products do.
  EXPECT_LT(relative_error(got, prompt_logits(*file_reference, prompt)), 1e-2);
  // Against the unquantized model: 8-bit weights with one scale per 32 values.
  EXPECT_LT(relative_error(got, prompt_logits(*hf_reference_, prompt)), 5e-2);

  ModelOptions dequantized;
  dequantized.device = device_;
  dequantized.dtype = DType::kF32;  // GPUs would default to bf16 activations
  dequantized.keep_quantized = false;
  auto plain = load_model(path, dequantized);
  EXPECT_EQ(plain->info().weight_types.find("q8_0"), std::string::npos);
  EXPECT_LT(relative_error(prompt_logits(*plain, prompt), prompt_logits(*file_reference, prompt)),
            1e-4);
}

TEST(GgufChatModel, EmbeddedTokenizerAndTemplateMatchTheFolder) {
  ScratchFolder folder("gguf_chat");
  testing::write_tiny_chat_model(folder.path());
  std::string path =
      testing::write_tiny_chat_gguf(folder.path(), folder.path() + "/m.gguf", DType::kF32);
  Tokenizer from_folder = load_model_tokenizer(folder.path());
  Tokenizer from_gguf = load_model_tokenizer(path);
  const std::string text = "Once upon a time, 42 cats";
  EXPECT_EQ(from_gguf.encode(text), from_folder.encode(text));
  EXPECT_EQ(from_gguf.chat_template(), from_folder.chat_template());

  auto hf_model = load_model(folder.path());
  auto gguf_model = load_model(path);
  Generator a(*hf_model, &from_folder, 64), b(*gguf_model, &from_gguf, 64);
  GenerationOptions options;
  options.max_new_tokens = 16;
  GenerationResult hf = a.generate(from_folder.encode(text), options);
  GenerationResult gguf = b.generate(from_gguf.encode(text), options);
  EXPECT_EQ(gguf.tokens, hf.tokens);
  EXPECT_EQ(gguf.text, hf.text);
}

INSTANTIATE_TEST_SUITE_P(AllDevices, GgufModelTest,
                         ::testing::Combine(::testing::ValuesIn(testing::tiny_variants()),
                                            ::testing::ValuesIn(runtime::all_devices())),
                         [](const ::testing::TestParamInfo<Param>& info) {
                           std::string name =
                               std::get<0>(info.param) + "_" + std::get<1>(info.param).spec();
                           for (char& c : name)
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           return name;
                         });

}  // namespace
}  // namespace flagstone::engine
