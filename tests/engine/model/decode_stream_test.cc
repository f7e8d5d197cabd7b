// The decode step's one-row products on the streamed GEMV (FLAGSTONE_ENGINE_STREAM, CUDA on sm_90;
// the default there): f32 models wide enough that every product qualifies (rows of 2 KiB), with
// q/k/v bias (qwen2) and without, one attention split and several. The logits of each step match
// the float64 reference and the step on the register GEMV and cuBLAS (=0), greedy tokens equal,
// and the two steps are different code (their f32 sums differ in order).
#include <gtest/gtest.h>

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

class DecodeStreamTest : public ::testing::TestWithParam<Device> {
 protected:
  void SetUp() override {
    if (const std::string why = testing::why_not_sm90(GetParam(), "the streamed GEMV");
        !why.empty())
      GTEST_SKIP() << why;
  }
  ScratchFolder folder_{"decode_stream"};
};

TEST_P(DecodeStreamTest, MatchesTheRegisterGemvStepAndTheReference) {
  struct Case {
    const char* variant;
    int64_t prompt;  // 5 keys: one attention split; 90: several
  };
  for (const Case& c : {Case{"llama", 5}, Case{"qwen2", 90}}) {
    SCOPED_TRACE(std::string(c.variant) + " prompt " + std::to_string(c.prompt));
    testing::TinyOptions tiny;
    tiny.sliding_window = false;
    tiny.hidden = 512;         // f32 rows of 2 KiB: q/k/v, o, gate/up and the head
    tiny.intermediate = 1024;  // and down
    const std::string folder =
        testing::write_tiny_hf_model(folder_.sub(c.variant), c.variant, tiny);
    ModelOptions ref_options;
    ref_options.reference = true;
    const std::vector<TokenId> prompt = testing::tiny_prompt(c.prompt, 5);
    const Steps want = decode(*load_model(folder, ref_options), prompt, 6);
    ModelOptions options;
    options.device = GetParam();
    options.dtype = DType::kF32;
    Steps streamed, plain;
    {
      ScopedEnv env("FLAGSTONE_ENGINE_STREAM", "all");
      streamed = decode(*load_model(folder, options), prompt, 6);
    }
    {
      ScopedEnv env("FLAGSTONE_ENGINE_STREAM", "0");
      plain = decode(*load_model(folder, options), prompt, 6, &want.tokens);
    }
    EXPECT_EQ(streamed.tokens, want.tokens);
    ASSERT_EQ(streamed.logits.size(), want.logits.size());
    bool differs = false;
    for (size_t i = 0; i < want.logits.size(); ++i) {
      EXPECT_LT(relative_error(streamed.logits[i], want.logits[i]), 1e-4) << "step " << i;
      EXPECT_LT(relative_error(streamed.logits[i], plain.logits[i]), 1e-4) << "step " << i;
      differs = differs || streamed.logits[i] != plain.logits[i];
    }
    EXPECT_TRUE(differs) << "the streamed and the register-GEMV step gave identical logits";
  }
}

// The fused step, the default for one row on sm_90: the gate/up product takes the norm in front
// and silu * up behind it (the streamed GEMV's silu epilogue), down only the residual add; the
// profile names that product, and the logits match the float64 reference and the fused step with
// the activation in front of down (FLAGSTONE_ENGINE_SILU=down).
TEST_P(DecodeStreamTest, FusedStepWithTheActivationAfterGateUp) {
  testing::TinyOptions tiny;
  tiny.sliding_window = false;
  tiny.hidden = 512;
  tiny.intermediate = 1024;
  const std::string folder = testing::write_tiny_hf_model(folder_.sub("fused"), "llama", tiny);
  ModelOptions ref_options;
  ref_options.reference = true;
  const std::vector<TokenId> prompt = testing::tiny_prompt(40, 3);
  const Steps want = decode(*load_model(folder, ref_options), prompt, 6);
  ModelOptions options;
  options.device = GetParam();
  options.dtype = DType::kF32;
  Steps after, before;
  {
    auto model = load_model(folder, options);
    after = decode(*model, prompt, 6, &want.tokens);
    KvCache cache = model->new_cache(1, 16);
    model->forward(Tensor::from_vector(std::vector<int64_t>{1, 5, 9}, {1, 3}), cache);
    int named = 0, gathers = 0, embeddings = 0;
    for (const OpTime& op :
         model->profile_forward(Tensor::from_vector(std::vector<int64_t>{4}, {1, 1}), cache)) {
      named += op.op.find("+rms_norm +silu_and_mul after") != std::string::npos;
      gathers += op.op.find("+embedding") != std::string::npos;
      embeddings += op.op == "embedding";
    }
    EXPECT_EQ(named, 1) << "no gate/up product with the silu epilogue in the profile";
    // The first q/k/v product looks its row up: no embedding kernel of its own.
    EXPECT_EQ(gathers, 1);
    EXPECT_EQ(embeddings, 0);
  }
  {
    ScopedEnv down("FLAGSTONE_ENGINE_SILU", "down");
    before = decode(*load_model(folder, options), prompt, 6, &want.tokens);
  }
  EXPECT_EQ(after.tokens, want.tokens);
  ASSERT_EQ(after.logits.size(), want.logits.size());
  for (size_t i = 0; i < want.logits.size(); ++i) {
    EXPECT_LT(relative_error(after.logits[i], want.logits[i]), 1e-4) << "step " << i;
    EXPECT_LT(relative_error(after.logits[i], before.logits[i]), 1e-5) << "step " << i;
  }
}

// The head's streamed GEMV makes the greedy pick as it ends (no kernel of its own): greedy steps
// (f32 and bf16, ids fed back on the device) give the float64 reference's tokens in f32 and the
// same tokens as the separate pick kernel (FLAGSTONE_ENGINE_HEAD_PICK=0) in both, the ids reach
// the host slot, and the profile names the head with the pick.
TEST_P(DecodeStreamTest, GreedyPickInTheHead) {
  testing::TinyOptions tiny;
  tiny.sliding_window = false;
  tiny.hidden = 1024;  // bf16 rows of 2 KiB
  tiny.intermediate = 2048;
  const std::string folder = testing::write_tiny_hf_model(folder_.sub("pick"), "llama", tiny);
  ModelOptions ref_options;
  ref_options.reference = true;
  const std::vector<TokenId> prompt = testing::tiny_prompt(20, 3);
  const int64_t steps = 8;
  const Steps want = decode(*load_model(folder, ref_options), prompt, steps);
  for (DType dtype : {DType::kF32, DType::kBF16}) {
    SCOPED_TRACE(dtype_name(dtype));
    ModelOptions options;
    options.device = GetParam();
    options.dtype = dtype;
    // Greedy ids of `steps` steps fed back on the device, each also read from its host slot.
    auto greedy = [&](Model& model) {
      KvCache cache = model.new_cache(1, 48);
      Tensor next = model.forward_greedy(
          Tensor::from_vector(std::vector<int64_t>(prompt.begin(), prompt.end()),
                              {1, static_cast<int64_t>(prompt.size())}),
          cache);
      std::vector<int64_t> ids{next.to_vector<int64_t>()[0]};
      for (int64_t i = 1; i < steps; ++i) {
        next = model.forward_greedy(next, cache);
        const int64_t id = next.to_vector<int64_t>()[0];  // waits for the step
        const int64_t* host = model.greedy_host_ids(cache);
        EXPECT_TRUE(host && *host == id) << "step " << i << ": host slot differs from " << id;
        ids.push_back(id);
      }
      return ids;
    };
    auto model = load_model(folder, options);
    const std::vector<int64_t> in_head = greedy(*model);
    std::vector<int64_t> own_kernel;
    {
      ScopedEnv separate("FLAGSTONE_ENGINE_HEAD_PICK", "0");
      own_kernel = greedy(*load_model(folder, options));
    }
    EXPECT_EQ(in_head, own_kernel);
    if (dtype == DType::kF32) {
      EXPECT_EQ(in_head, std::vector<int64_t>(want.tokens.begin(), want.tokens.begin() + steps));
    }
    KvCache cache = model->new_cache(1, 16);
    model->forward(Tensor::from_vector(std::vector<int64_t>{1, 5, 9}, {1, 3}), cache);
    int named = 0;
    for (const OpTime& op :
         model->profile_forward(Tensor::from_vector(std::vector<int64_t>{4}, {1, 1}), cache))
      named += op.op.find("+greedy pick") != std::string::npos;
    EXPECT_EQ(named, 1) << "no head product with the greedy pick in the profile";
  }
}

FLAGSTONE_INSTANTIATE_ON_ALL_DEVICES(DecodeStreamTest);

}  // namespace
}  // namespace flagstone::engine
