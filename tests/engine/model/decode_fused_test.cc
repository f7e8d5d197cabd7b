// The decode step's fused products (norm or silu * up before each one-token linear, the residual
// add after it; FLAGSTONE_ENGINE_FUSED, CUDA only): logits of every architecture variant against
// the unfused step on the same tokens and against the float64 reference, greedy tokens identical
// in f32, batched steps, and the profile naming the fused kernels that ran.
#include <gtest/gtest.h>

#include <cstdlib>

#include "engine/model/tiny_models.h"
#include "flagstone/engine/model/model.h"
#include "support/devices.h"

namespace flagstone::engine {
namespace {

using testing::relative_error;
using testing::ScratchFolder;

// Sets FLAGSTONE_ENGINE_FUSED for one scope (the model reads it when it records a step).
class FusedEnv {
 public:
  explicit FusedEnv(const char* value) { ::setenv("FLAGSTONE_ENGINE_FUSED", value, 1); }
  ~FusedEnv() { ::unsetenv("FLAGSTONE_ENGINE_FUSED"); }
  FusedEnv(const FusedEnv&) = delete;
  FusedEnv& operator=(const FusedEnv&) = delete;
};

// Logits of each decode step and the argmax picks, `batch` copies of the prompt (the copies
// after the first shifted by one token, so rows differ). Each step feeds the picks back, or with
// `forced` the tokens of another run (shifted the same way per row), so two paths compared step
// by step see the same inputs even where a near tie in 16 bits picks differently.
struct Steps {
  std::vector<std::vector<double>> logits;
  std::vector<int64_t> tokens;
};
Steps decode(Model& model, const std::vector<TokenId>& prompt, int64_t steps, int64_t batch,
             const std::vector<int64_t>* forced = nullptr) {
  const auto n = static_cast<int64_t>(prompt.size());
  std::vector<int64_t> flat;
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t i = 0; i < n; ++i) flat.push_back((prompt[i] + b) % testing::kTinyVocab);
  KvCache cache = model.new_cache(batch, 48);
  Tensor logits = model.forward(Tensor::from_vector(flat, {batch, n}), cache);
  Steps out;
  const int64_t vocab = model.config().vocab_size;
  for (int64_t i = 0; i < steps; ++i) {
    std::vector<double> all = logits.to_double_vector();
    std::vector<int64_t> next;
    for (int64_t b = 0; b < batch; ++b) {
      auto row = all.begin() + b * vocab;
      const int64_t pick = std::max_element(row, row + vocab) - row;
      out.tokens.push_back(pick);
      next.push_back(forced ? ((*forced)[i] + b) % testing::kTinyVocab : pick);
    }
    logits = model.forward(Tensor::from_vector(next, {batch, 1}), cache);
    out.logits.push_back(logits.to_double_vector());
  }
  return out;
}

class DecodeFusedTest : public ::testing::TestWithParam<Device> {
 protected:
  void SetUp() override {
    if (GetParam().backend() != "cuda") GTEST_SKIP() << "the fused decode step is CUDA's";
  }
  std::unique_ptr<Model> load(const std::string& folder, DType dtype) {
    ModelOptions options;
    options.device = GetParam();
    options.dtype = dtype;
    return load_model(folder, options);
  }
  std::unique_ptr<Model> reference(const std::string& folder) {
    ModelOptions options;
    options.reference = true;
    return load_model(folder, options);
  }
  ScratchFolder folder_{"decode_fused"};
};

TEST_P(DecodeFusedTest, EveryVariantMatchesUnfusedAndReference) {
  for (const std::string& variant : testing::tiny_variants()) {
    testing::TinyOptions tiny;
    tiny.sliding_window = false;  // a window shorter than the cache keeps the step op by op
    const std::string folder = testing::write_tiny_hf_model(folder_.sub(variant), variant, tiny);
    auto ref = reference(folder);
    const std::vector<TokenId> prompt = testing::tiny_prompt(7, 11);
    const Steps want = decode(*ref, prompt, 8, 1);
    for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16}) {
      for (int64_t batch : {1, 3}) {
        SCOPED_TRACE(variant + " " + std::string(dtype_name(dtype)) + " batch " +
                     std::to_string(batch));
        Steps fused, unfused;
        {
          FusedEnv env("1");
          fused = decode(*load(folder, dtype), prompt, 8, batch, &want.tokens);
        }
        {
          FusedEnv env("0");
          unfused = decode(*load(folder, dtype), prompt, 8, batch, &want.tokens);
        }
        ASSERT_EQ(fused.logits.size(), unfused.logits.size());
        // f32: only the order of the sums differs. f16/bf16: the same roundings in a different
        // order of accumulation, so a rounding may flip now and then.
        const double same = dtype == DType::kF32 ? 1e-5 : 2e-2;
        for (size_t i = 0; i < fused.logits.size(); ++i)
          EXPECT_LT(relative_error(fused.logits[i], unfused.logits[i]), same) << "step " << i;
        // Greedy picks of the same inputs: identical in f32.
        if (dtype == DType::kF32) {
          EXPECT_EQ(fused.tokens, unfused.tokens);
        }
        if (batch == 1) {
          // The first row against the float64 reference.
          const double tol = dtype == DType::kF32 ? 1e-4 : 1e-1;
          if (dtype == DType::kF32) {
            EXPECT_EQ(fused.tokens, want.tokens);
          }
          for (size_t i = 0; i < fused.logits.size(); ++i)
            EXPECT_LT(relative_error(fused.logits[i], want.logits[i]), tol) << "step " << i;
        }
      }
    }
  }
}

TEST_P(DecodeFusedTest, ProfileNamesTheFusedKernels) {
  const std::string folder = testing::write_tiny_hf_model(folder_.sub("llama"), "llama");
  for (const char* mode : {"1", "layers", "0"}) {
    SCOPED_TRACE(mode);
    FusedEnv env(mode);
    auto model = load(folder, DType::kBF16);
    KvCache cache = model->new_cache(1, 16);
    model->forward(Tensor::from_vector(std::vector<int64_t>{1, 5, 9}, {1, 3}), cache);
    std::vector<OpTime> ops =
        model->profile_forward(Tensor::from_vector(std::vector<int64_t>{4}, {1, 1}), cache);
    int fused = 0, norms = 0, head_fused = 0;
    for (const OpTime& op : ops) {
      if (op.op.find("fused") != std::string::npos) ++fused;
      if (op.op == "linear [" + std::to_string(testing::kTinyVocab) + ", " +
                       std::to_string(testing::TinyOptions().hidden) + "] fused +rms_norm")
        ++head_fused;
      if (op.op.find("rms_norm") == 0 || op.op.find("add_rms_norm") == 0) ++norms;
    }
    if (std::string(mode) == "0") {
      EXPECT_EQ(fused, 0);
      EXPECT_GT(norms, 0);
    } else {
      // qkv (+norm), o (+residual), gate_up (+norm), down (+silu, +residual): four names.
      EXPECT_GE(fused, 4);
      EXPECT_EQ(head_fused, std::string(mode) == "1" ? 1 : 0);
      EXPECT_EQ(norms, std::string(mode) == "1" ? 0 : 1);
    }
  }
}

FLAGSTONE_INSTANTIATE_ON_ALL_DEVICES(DecodeFusedTest);

}  // namespace
}  // namespace flagstone::engine
