// Every architecture, written as a tiny random model in the real formats, runs on every device
// and matches the float64 reference path: logits within the dtype's tolerance, with and without
// the KV cache, and greedy generation token for token.
#include <gtest/gtest.h>

#include <tuple>

#include "engine/model/tiny_models.h"
#include "flagstone/engine/generate/generator.h"
#include "flagstone/engine/model/model.h"
#include "flagstone/ops/ops.h"
#include "support/devices.h"

namespace flagstone::engine {
namespace {

using testing::relative_error;
using testing::ScratchFolder;

// Relative logit error allowed per activation dtype: a few hundred ulps, accumulated over two
// layers of rounding to the dtype.
double tolerance(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return 1e-4;
    case DType::kF16:
      return 1e-2;
    default:
      return 6e-2;  // bf16: 8 significand bits
  }
}

Tensor tokens_tensor(const std::vector<TokenId>& ids, int64_t begin, int64_t end) {
  std::vector<int64_t> values(ids.begin() + begin, ids.begin() + end);
  return Tensor::from_vector(values, {1, end - begin});
}

// Logits [count, vocab] of the whole prompt in one forward pass.
std::vector<double> prompt_logits(Model& model, const std::vector<TokenId>& prompt) {
  KvCache cache = model.new_cache(1, 64);
  auto n = static_cast<int64_t>(prompt.size());
  return model.forward(tokens_tensor(prompt, 0, n), cache, true).to_double_vector();
}

std::vector<TokenId> greedy(Model& model, const std::vector<TokenId>& prompt, int64_t count) {
  Generator generator(model, nullptr, 64);
  GenerationOptions options;
  options.max_new_tokens = count;
  return generator.generate(prompt, options).tokens;
}

using Param = std::tuple<std::string, Device>;

class ModelTest : public ::testing::TestWithParam<Param> {
 protected:
  void SetUp() override {
    variant_ = std::get<0>(GetParam());
    device_ = std::get<1>(GetParam());
    testing::write_tiny_hf_model(folder_.path(), variant_);
    ModelOptions reference;
    reference.reference = true;
    reference_ = load_model(folder_.path(), reference);
  }

  std::unique_ptr<Model> load(DType dtype) {
    ModelOptions options;
    options.device = device_;
    options.dtype = dtype;
    return load_model(folder_.path(), options);
  }

  std::string variant_;
  Device device_;
  ScratchFolder folder_{"model"};
  std::unique_ptr<Model> reference_;
};

TEST_P(ModelTest, ReferenceModelIsFloat64OnCpu) {
  EXPECT_EQ(reference_->info().dtype, DType::kF64);
  EXPECT_TRUE(reference_->info().device.is_cpu());
  EXPECT_EQ(reference_->info().architecture, variant_ == "llama3" ? "llama" : variant_);
}

TEST_P(ModelTest, LogitsMatchReferenceInEachDtype) {
  // Longer than mistral's window of 8, so the sliding mask is exercised.
  std::vector<TokenId> prompt = testing::tiny_prompt(20);
  std::vector<double> expected = prompt_logits(*reference_, prompt);
  for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16}) {
    SCOPED_TRACE(std::string(dtype_name(dtype)));
    auto model = load(dtype);
    EXPECT_EQ(model->info().device, device_);
    std::vector<double> logits = prompt_logits(*model, prompt);
    EXPECT_LT(relative_error(logits, expected), tolerance(dtype));
  }
}

TEST_P(ModelTest, CachedDecodeMatchesFullPrefill) {
  // Prefill 7 tokens, then a chunk of 5, then one token at a time: each step's logits must
  // equal the reference's logits of the same position computed in one pass.
  std::vector<TokenId> prompt = testing::tiny_prompt(17, 11);
  std::vector<double> expected = prompt_logits(*reference_, prompt);
  const int64_t vocab = testing::kTinyVocab;
  auto model = load(DType::kF32);
  KvCache cache = model->new_cache(1, 32);
  std::vector<double> got;
  auto run = [&](int64_t begin, int64_t end) {
    Tensor logits = model->forward(tokens_tensor(prompt, begin, end), cache, true);
    ASSERT_EQ(logits.shape(), (Shape{1, end - begin, vocab}));
    auto values = logits.to_double_vector();
    got.insert(got.end(), values.begin(), values.end());
  };
  run(0, 7);
  run(7, 12);
  for (int64_t i = 12; i < 17; ++i) run(i, i + 1);
  EXPECT_EQ(cache.length(), 17);
  EXPECT_LT(relative_error(got, expected), tolerance(DType::kF32));
}

TEST_P(ModelTest, LastPositionLogitsOnly) {
  std::vector<TokenId> prompt = testing::tiny_prompt(9);
  auto model = load(DType::kF32);
  KvCache cache = model->new_cache();
  Tensor last = model->forward(tokens_tensor(prompt, 0, 9), cache);
  ASSERT_EQ(last.shape(), (Shape{1, 1, testing::kTinyVocab}));
  std::vector<double> all = prompt_logits(*reference_, prompt);
  std::vector<double> tail(all.end() - testing::kTinyVocab, all.end());
  EXPECT_LT(relative_error(last.to_double_vector(), tail), tolerance(DType::kF32));
}

TEST_P(ModelTest, BatchedSequencesMatchSingleOnes) {
  std::vector<TokenId> a = testing::tiny_prompt(6, 1), b = testing::tiny_prompt(6, 2);
  std::vector<int64_t> both(a.begin(), a.end());
  both.insert(both.end(), b.begin(), b.end());
  auto model = load(DType::kF32);
  KvCache cache = model->new_cache(2, 16);
  std::vector<double> got =
      model->forward(Tensor::from_vector(both, {2, 6}), cache, true).to_double_vector();
  std::vector<double> expected = prompt_logits(*reference_, a);
  std::vector<double> second = prompt_logits(*reference_, b);
  expected.insert(expected.end(), second.begin(), second.end());
  EXPECT_LT(relative_error(got, expected), tolerance(DType::kF32));
}

TEST_P(ModelTest, GreedyGenerationMatchesReferenceTokenForToken) {
  std::vector<TokenId> prompt = testing::tiny_prompt(5, 21);
  std::vector<TokenId> expected = greedy(*reference_, prompt, 16);
  auto model = load(DType::kF32);
  EXPECT_EQ(greedy(*model, prompt, 16), expected);
}

INSTANTIATE_TEST_SUITE_P(AllDevices, ModelTest,
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
