// Bad models and bad calls give a flagstone::Error naming the file, tensor or key at fault.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "engine/model/tiny_models.h"
#include "flagstone/engine/model/architecture.h"
#include "flagstone/engine/model/model.h"

namespace flagstone::engine {
namespace {

using testing::ScratchFolder;

// Rewrites one key of config.json.
void patch_config(const std::string& folder, const std::string& key, nlohmann::json value) {
  std::ifstream in(folder + "/config.json");
  nlohmann::json config = nlohmann::json::parse(in);
  in.close();
  config[key] = std::move(value);
  std::ofstream(folder + "/config.json") << config.dump();
}

// Runs `body`, expecting a flagstone::Error of `category` whose message holds every `parts`.
template <typename Body>
void expect_error(Body body, ErrorCategory category, std::vector<std::string> parts) {
  try {
    body();
    ADD_FAILURE() << "no error thrown";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), category) << e.what();
    for (const std::string& part : parts)
      EXPECT_NE(e.message().find(part), std::string::npos)
          << "'" << part << "' not in: " << e.message();
  }
}

TEST(ModelErrors, MissingPath) {
  expect_error([] { load_model("/nonexistent/model"); }, ErrorCategory::kNotFound,
               {"/nonexistent/model"});
}

TEST(ModelErrors, MissingTensorIsNamed) {
  ScratchFolder folder("errors");
  testing::write_tiny_hf_model(folder.path(), "llama");
  patch_config(folder.path(), "num_hidden_layers", 3);
  expect_error([&] { load_model(folder.path()); }, ErrorCategory::kFormat,
               {"model.layers.2.", folder.path()});
}

TEST(ModelErrors, WrongShapeIsNamed) {
  ScratchFolder folder("errors");
  testing::write_tiny_hf_model(folder.path(), "qwen2");
  patch_config(folder.path(), "intermediate_size", 100);
  expect_error([&] { load_model(folder.path()); }, ErrorCategory::kFormat,
               {"mlp.gate_proj.weight", "[160, 64]", "[100, 64]"});
}

TEST(ModelErrors, MissingHeadWithoutTiedEmbeddings) {
  ScratchFolder folder("errors");
  testing::write_tiny_hf_model(folder.path(), "qwen2");  // tied: no lm_head.weight
  patch_config(folder.path(), "tie_word_embeddings", false);
  expect_error([&] { load_model(folder.path()); }, ErrorCategory::kFormat, {"lm_head.weight"});
}

TEST(ModelErrors, UnknownArchitectureListsSupportedOnes) {
  ScratchFolder folder("errors");
  testing::write_tiny_hf_model(folder.path(), "llama");
  patch_config(folder.path(), "model_type", "gpt_neox");
  expect_error([&] { load_model(folder.path()); }, ErrorCategory::kUnsupported,
               {"gpt_neox", "llama", "qwen3"});
}

TEST(ModelErrors, UnsupportedRopeScaling) {
  ScratchFolder folder("errors");
  testing::write_tiny_hf_model(folder.path(), "llama");
  patch_config(folder.path(), "rope_scaling", {{"rope_type", "yarn"}, {"factor", 4.0}});
  expect_error([&] { load_model(folder.path()); }, ErrorCategory::kUnsupported, {"yarn"});
}

TEST(ModelErrors, ForwardChecksCacheAndTokens) {
  ScratchFolder folder("errors");
  testing::write_tiny_hf_model(folder.path(), "llama");
  auto model = load_model(folder.path());
  KvCache cache = model->new_cache(1, 4);
  Tensor five = Tensor::from_vector(std::vector<int64_t>{1, 2, 3, 4, 5}, {1, 5});
  expect_error([&] { model->forward(five, cache); }, ErrorCategory::kInvalidArgument,
               {"exceed the KV cache's 4 positions"});
  EXPECT_EQ(cache.length(), 0);
  Tensor floats = Tensor::from_vector(std::vector<float>{1, 2}, {1, 2});
  expect_error([&] { model->forward(floats, cache); }, ErrorCategory::kInvalidArgument,
               {"i64 or i32"});
  KvCache pair = model->new_cache(2, 4);
  Tensor one = Tensor::from_vector(std::vector<int64_t>{1}, {1, 1});
  expect_error([&] { model->forward(one, pair); }, ErrorCategory::kInvalidArgument, {"batch of 1"});
  Tensor outside = Tensor::from_vector(std::vector<int64_t>{1, testing::kTinyVocab}, {1, 2});
  EXPECT_THROW(model->forward(outside, cache), Error);
}

TEST(ModelErrors, RegistryRefusesDuplicateModelTypes) {
  Architecture arch;
  arch.name = "llama_again";
  arch.model_types = {"llama"};
  arch.traits = [](const ModelConfig&, WeightFormat) { return DecoderTraits{}; };
  expect_error([&] { register_architecture(arch); }, ErrorCategory::kInvalidArgument,
               {"llama_again", "already served"});
  ModelConfig config;
  config.model_type = "llama";
  EXPECT_EQ(architecture_for(config).name, "llama");
}

}  // namespace
}  // namespace flagstone::engine
