// Conformance with Hugging Face transformers: tiny random models saved with save_pretrained
// and their logits and greedy continuations (tools/fixtures/make_model_fixtures.py, committed
// under tests/data/models/<name>/): our f32 logits within 1e-4 relative, greedy tokens equal.
#include <gtest/gtest.h>

#include <filesystem>

#include "engine/model/tiny_models.h"
#include "flagstone/engine/format/safetensors.h"
#include "flagstone/engine/generate/generator.h"
#include "flagstone/engine/model/model.h"

namespace flagstone::engine {
namespace {

class HfFixtureTest : public ::testing::TestWithParam<std::string> {};

TEST_P(HfFixtureTest, LogitsAndGreedyMatchTransformers) {
  const std::string folder = std::string(FLAGSTONE_TEST_DATA) + "/models/" + GetParam();
  if (!std::filesystem::exists(folder + "/reference.safetensors")) {
    GTEST_SKIP() << "fixture folder tests/data/models/" << GetParam()
                 << " is missing (tools/fixtures/make_model_fixtures.py writes it)";
  }
  ModelOptions options;
  options.dtype = DType::kF32;
  auto model = load_model(folder, options);
  auto reference = format::SafetensorsModel::open(folder + "/reference.safetensors");
  int prompts = 0;
  for (int i = 0;; ++i) {
    std::string p = "prompt_" + std::to_string(i);
    if (!reference.contains(p + ".input_ids")) break;
    ++prompts;
    SCOPED_TRACE(p);
    Tensor ids = reference.load(p + ".input_ids");
    const int64_t n = ids.numel();
    KvCache cache = model->new_cache(1, n + 16);
    Tensor logits = model->forward(ids.reshape({1, n}), cache, true);
    std::vector<double> expected = reference.load(p + ".logits").to_double_vector();
    EXPECT_LT(testing::relative_error(logits.to_double_vector(), expected), 1e-4);

    std::vector<TokenId> prompt;
    for (double v : ids.to_double_vector()) prompt.push_back(static_cast<TokenId>(v));
    std::vector<TokenId> greedy;
    for (double v : reference.load(p + ".greedy").to_double_vector())
      greedy.push_back(static_cast<TokenId>(v));
    Generator generator(*model, nullptr, n + 16);
    GenerationOptions generation;  // greedy, and no EOS: transformers ran with eos_token_id=None
    generation.max_new_tokens = static_cast<int64_t>(greedy.size());
    EXPECT_EQ(generator.generate(prompt, generation).tokens, greedy);
  }
  EXPECT_GT(prompts, 0) << folder << "/reference.safetensors holds no prompt_0.input_ids";
}

INSTANTIATE_TEST_SUITE_P(Transformers, HfFixtureTest,
                         ::testing::Values("llama", "llama3", "mistral", "qwen2", "qwen3"));

}  // namespace
}  // namespace flagstone::engine
