// The decode step as one persistent kernel (FLAGSTONE_ENGINE_PERSISTENT=1, CUDA on sm_90):
// logits of each step against the kernel-per-op step on the same tokens and against the float64
// reference, for head dims 64 and 128, tied and untied heads, one attention split and several
// (the split merge), f16 and bf16; and the models it cannot serve say why and stay correct.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>

#include "engine/model/decode_steps.h"
#include "engine/model/tiny_models.h"
#include "flagstone/engine/model/model.h"
#include "support/devices.h"

namespace flagstone::engine {
namespace {

using testing::decode;
using testing::relative_error;
using testing::ScopedEnv;
using testing::ScratchFolder;
using testing::Steps;

class DecodePersistentTest : public ::testing::TestWithParam<Device> {
 protected:
  void SetUp() override {
    if (const std::string why = testing::why_not_sm90(GetParam(), "the persistent decode step");
        !why.empty())
      GTEST_SKIP() << why;
  }
  std::unique_ptr<Model> load(const std::string& folder, DType dtype) {
    ModelOptions options;
    options.device = GetParam();
    options.dtype = dtype;
    return load_model(folder, options);
  }
  ScratchFolder folder_{"decode_persistent"};
};

TEST_P(DecodePersistentTest, MatchesTheOpByOpStepAndTheReference) {
  struct Case {
    const char* variant;
    int64_t hidden;  // 4 heads: head_dim 64 or 128
    int64_t prompt;  // 5 keys: one attention split; 90: several
  };
  for (const Case& c : {Case{"llama", 256, 5}, Case{"llama3", 256, 90}, Case{"mistral", 512, 90},
                        Case{"llama", 512, 5}}) {
    testing::TinyOptions tiny;
    tiny.sliding_window = false;
    tiny.hidden = c.hidden;
    tiny.intermediate = 2 * c.hidden + 8 * 3;
    const std::string name = std::string(c.variant) + std::to_string(c.hidden);
    const std::string folder = testing::write_tiny_hf_model(folder_.sub(name), c.variant, tiny);
    ModelOptions ref_options;
    ref_options.reference = true;
    auto ref = load_model(folder, ref_options);
    const std::vector<TokenId> prompt = testing::tiny_prompt(c.prompt, 5);
    const Steps want = decode(*ref, prompt, 6);
    for (DType dtype : {DType::kF16, DType::kBF16}) {
      SCOPED_TRACE(name + " prompt " + std::to_string(c.prompt) + " " +
                   std::string(dtype_name(dtype)));
      Steps persistent, plain;
      {
        ScopedEnv env("FLAGSTONE_ENGINE_PERSISTENT", "1");
        auto model = load(folder, dtype);
        persistent = decode(*model, prompt, 6, &want.tokens);
        EXPECT_TRUE(model->info().decode_persistent) << model->info().decode_persistent_note;
      }
      {
        ScopedEnv env("FLAGSTONE_ENGINE_PERSISTENT", "0");
        auto model = load(folder, dtype);
        plain = decode(*model, prompt, 6, &want.tokens);
        EXPECT_FALSE(model->info().decode_persistent);
      }
      ASSERT_EQ(persistent.logits.size(), plain.logits.size());
      for (size_t i = 0; i < plain.logits.size(); ++i) {
        // The same roundings as the op-by-op step in a different order of accumulation.
        EXPECT_LT(relative_error(persistent.logits[i], plain.logits[i]), 2e-2) << "step " << i;
        EXPECT_LT(relative_error(persistent.logits[i], want.logits[i]), 1e-1) << "step " << i;
      }
    }
  }
}

TEST_P(DecodePersistentTest, UnservedModelsSayWhyAndStayCorrect) {
  testing::TinyOptions tiny;
  tiny.hidden = 256;
  const std::string folder = testing::write_tiny_hf_model(folder_.sub("qwen2"), "qwen2", tiny);
  ModelOptions ref_options;
  ref_options.reference = true;
  const std::vector<TokenId> prompt = testing::tiny_prompt(6, 5);
  const Steps want = decode(*load_model(folder, ref_options), prompt, 3);
  ScopedEnv env("FLAGSTONE_ENGINE_PERSISTENT", "1");
  auto model = load(folder, DType::kBF16);
  const Steps got = decode(*model, prompt, 3, &want.tokens);
  EXPECT_FALSE(model->info().decode_persistent);
  EXPECT_NE(model->info().decode_persistent_note.find("bias"), std::string::npos)
      << model->info().decode_persistent_note;
  for (size_t i = 0; i < got.logits.size(); ++i)
    EXPECT_LT(relative_error(got.logits[i], want.logits[i]), 1e-1) << "step " << i;
}

TEST_P(DecodePersistentTest, TokenOutsideTheVocabularyGivesNaNLogits) {
  // A device cannot raise: like the ops library's embedding, the step's outputs become NaN.
  testing::TinyOptions tiny;
  tiny.hidden = 256;
  const std::string folder = testing::write_tiny_hf_model(folder_.sub("llama"), "llama", tiny);
  ScopedEnv env("FLAGSTONE_ENGINE_PERSISTENT", "1");
  auto model = load(folder, DType::kBF16);
  KvCache cache = model->new_cache(1, 32);
  model->forward(Tensor::from_vector(std::vector<int64_t>{3, 4, 5}, {1, 3}), cache);
  Tensor logits = model->forward(
      Tensor::from_vector(std::vector<int64_t>{testing::kTinyVocab + 3}, {1, 1}), cache);
  ASSERT_TRUE(model->info().decode_persistent) << model->info().decode_persistent_note;
  for (double v : logits.to_double_vector()) ASSERT_TRUE(std::isnan(v));
}

FLAGSTONE_INSTANTIATE_ON_ALL_DEVICES(DecodePersistentTest);

}  // namespace
}  // namespace flagstone::engine
