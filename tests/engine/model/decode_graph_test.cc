// The device decode step (token ids, positions and lengths read from device memory; on CUDA
// recorded once as a graph and replayed): logits equal the op-by-op run of the same step exactly,
// greedy tokens are identical, batched decode matches single sequences against the float64
// reference, a second cache records again, returned logits survive later steps, and greedy
// steps that feed their own ids back follow argmax over the logits.
#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/model/decode_steps.h"
#include "engine/model/tiny_models.h"
#include "flagstone/engine/model/model.h"
#include "flagstone/ops/ops.h"
#include "support/devices.h"

namespace flagstone::engine {
namespace {

using testing::relative_error;
using testing::ScratchFolder;

Tensor ids(const std::vector<TokenId>& values, int64_t begin, int64_t end, int64_t batch = 1) {
  std::vector<int64_t> out;
  for (int64_t b = 0; b < batch; ++b)
    out.insert(out.end(), values.begin() + begin, values.begin() + end);
  return Tensor::from_vector(out, {batch, end - begin});
}

// Prefills `prompt`, then decodes `steps` tokens greedily on the device; returns every decode
// step's logits (as doubles) and the chosen ids.
struct Decoded {
  std::vector<std::vector<double>> logits;
  std::vector<int64_t> tokens;
};
Decoded decode_greedy(Model& model, const std::vector<TokenId>& prompt, int64_t steps) {
  KvCache cache = model.new_cache(1, 48);
  auto n = static_cast<int64_t>(prompt.size());
  Tensor logits = model.forward(ids(prompt, 0, n), cache);
  Decoded out;
  const int64_t vocab = model.config().vocab_size;
  for (int64_t i = 0; i < steps; ++i) {
    Tensor next = ops::argmax(logits.reshape({1, vocab}), 1, true);
    out.tokens.push_back(next.to_vector<int64_t>()[0]);
    logits = model.forward(next.reshape({1, 1}), cache);
    out.logits.push_back(logits.to_double_vector());
  }
  return out;
}

class DecodeStepTest : public ::testing::TestWithParam<Device> {
 protected:
  std::unique_ptr<Model> load(const std::string& folder, DType dtype, bool graphs) {
    ModelOptions options;
    options.device = GetParam();
    options.dtype = dtype;
    options.graphs = graphs;
    return load_model(folder, options);
  }
  std::unique_ptr<Model> reference(const std::string& folder) {
    ModelOptions options;
    options.reference = true;
    return load_model(folder, options);
  }
  // FusedRopeAttentionMatchesUnfused for one model width.
  // A bf16 llama of `tiny`'s shape with `cached` tokens in a cache of `capacity`: ten decode
  // steps under each variant's environment against the unfused step and the float64 reference;
  // with `first_variant_op` set, the first variant's step profile must name that op.
  using EnvList = std::vector<std::pair<const char*, const char*>>;
  void check_fused_attention(testing::TinyOptions tiny, int64_t capacity, int64_t cached,
                             const std::vector<EnvList>& variants,
                             const std::string& first_variant_op);
  ScratchFolder folder_{"decode_step"};
};

TEST_P(DecodeStepTest, RecordedStepEqualsOpByOpExactly) {
  auto probe = load(testing::write_tiny_hf_model(folder_.sub("probe"), "llama"), DType::kF32, true);
  if (!probe->info().decode_graph)
    GTEST_SKIP() << GetParam().spec() << " runs decode op by op (no graphs to compare)";
  for (const std::string& variant : testing::tiny_variants()) {
    testing::TinyOptions tiny;
    tiny.sliding_window = false;  // mistral's window of 8 would keep it off the device step
    std::string folder = testing::write_tiny_hf_model(folder_.sub(variant), variant, tiny);
    for (DType dtype : {DType::kF32, DType::kBF16}) {
      SCOPED_TRACE(variant + " " + std::string(dtype_name(dtype)));
      auto graph = load(folder, dtype, true);
      auto eager = load(folder, dtype, false);
      EXPECT_TRUE(graph->info().decode_graph);
      EXPECT_FALSE(eager->info().decode_graph);
      std::vector<TokenId> prompt = testing::tiny_prompt(7, 5);
      Decoded a = decode_greedy(*graph, prompt, 12);
      Decoded b = decode_greedy(*eager, prompt, 12);
      EXPECT_EQ(a.tokens, b.tokens);
      ASSERT_EQ(a.logits.size(), b.logits.size());
      for (size_t i = 0; i < a.logits.size(); ++i)
        EXPECT_EQ(a.logits[i], b.logits[i]) << "step " << i;
    }
  }
}

TEST_P(DecodeStepTest, DecodeMatchesReferenceAtEachStep) {
  // The device step (when this device has one) against the float64 reference, token by token.
  for (const std::string& variant :
       {std::string("llama3"), std::string("qwen2"), std::string("qwen3")}) {
    SCOPED_TRACE(variant);
    std::string folder = testing::write_tiny_hf_model(folder_.sub(variant), variant);
    auto model = load(folder, DType::kF32, true);
    auto ref = reference(folder);
    std::vector<TokenId> prompt = testing::tiny_prompt(6, 9);
    Decoded got = decode_greedy(*model, prompt, 10);
    Decoded want = decode_greedy(*ref, prompt, 10);
    EXPECT_EQ(got.tokens, want.tokens);
    for (size_t i = 0; i < got.logits.size() && i < want.logits.size(); ++i)
      EXPECT_LT(relative_error(got.logits[i], want.logits[i]), 1e-4) << "step " << i;
  }
}

TEST_P(DecodeStepTest, BatchedDecodeMatchesSingleSequences) {
  std::string folder = testing::write_tiny_hf_model(folder_.sub("llama"), "llama");
  auto model = load(folder, DType::kF32, true);
  auto ref = reference(folder);
  std::vector<TokenId> a = testing::tiny_prompt(9, 1), b = testing::tiny_prompt(9, 2);
  // Both sequences prefill 5 tokens together, then decode their next 4 one step at a time.
  std::vector<int64_t> both;
  for (const auto* p : {&a, &b}) both.insert(both.end(), p->begin(), p->begin() + 5);
  KvCache cache = model->new_cache(2, 16);
  model->forward(Tensor::from_vector(both, {2, 5}), cache);
  std::vector<double> got;
  for (int64_t i = 5; i < 9; ++i) {
    std::vector<int64_t> step{a[i], b[i]};
    auto values = model->forward(Tensor::from_vector(step, {2, 1}), cache).to_double_vector();
    got.insert(got.end(), values.begin(), values.end());
  }
  // The reference: each sequence alone, all 9 tokens in one pass; positions 5..8.
  const int64_t vocab = testing::kTinyVocab;
  std::vector<std::vector<double>> rows(2);
  for (int s = 0; s < 2; ++s) {
    const auto& p = s == 0 ? a : b;
    KvCache c = ref->new_cache(1, 16);
    rows[s] = ref->forward(ids(p, 0, 9), c, true).to_double_vector();
  }
  std::vector<double> want;
  for (int64_t i = 5; i < 9; ++i)
    for (int s = 0; s < 2; ++s)
      want.insert(want.end(), rows[s].begin() + i * vocab, rows[s].begin() + (i + 1) * vocab);
  EXPECT_LT(relative_error(got, want), 1e-4);
}

TEST_P(DecodeStepTest, SecondCacheAndKeptLogitsStayCorrect) {
  std::string folder = testing::write_tiny_hf_model(folder_.sub("llama"), "llama");
  auto model = load(folder, DType::kF32, true);
  auto ref = reference(folder);
  std::vector<TokenId> p = testing::tiny_prompt(8, 4);
  std::vector<double> want;
  {
    KvCache c = ref->new_cache(1, 16);
    want = ref->forward(ids(p, 0, 8), c, true).to_double_vector();
  }
  const int64_t vocab = testing::kTinyVocab;
  auto row = [&](int64_t i) {
    return std::vector<double>(want.begin() + i * vocab, want.begin() + (i + 1) * vocab);
  };
  for (int round = 0; round < 2; ++round) {
    // A fresh cache each round (the second may reuse the first's memory or not).
    KvCache cache = model->new_cache(1, 16 + round);
    model->forward(ids(p, 0, 4), cache);
    Tensor first = model->forward(ids(p, 4, 5), cache);
    std::vector<double> first_now = first.to_double_vector();
    for (int64_t i = 5; i < 8; ++i) {
      Tensor later = model->forward(ids(p, i, i + 1), cache);
      EXPECT_LT(relative_error(later.to_double_vector(), row(i)), 1e-4) << "round " << round;
    }
    // Logits returned earlier are the caller's: later steps did not overwrite them.
    EXPECT_EQ(first.to_double_vector(), first_now);
    EXPECT_LT(relative_error(first_now, row(4)), 1e-4);
  }
}

// forward_greedy: the ids fed back as the next input (on a recorded step they stay in the step's
// input buffer, and positions advance on the device) follow the same tokens as argmax over
// forward()'s logits, also after the cache is cleared and when forward() steps are mixed in.
TEST_P(DecodeStepTest, GreedyStepsFollowArgmaxOfLogits) {
  std::string folder = testing::write_tiny_hf_model(folder_.sub("llama"), "llama");
  auto ref = reference(folder);
  std::vector<TokenId> prompt = testing::tiny_prompt(6, 3);
  const int64_t steps = 10, vocab = testing::kTinyVocab;
  Decoded want = decode_greedy(*ref, prompt, steps);
  for (DType dtype : {DType::kF32, DType::kBF16}) {
    SCOPED_TRACE(dtype_name(dtype));
    auto model = load(folder, dtype, true);
    Decoded by_logits = decode_greedy(*model, prompt, steps);
    if (dtype == DType::kF32) {
      EXPECT_EQ(by_logits.tokens, want.tokens);
    }
    KvCache cache = model->new_cache(1, 48);
    for (int round = 0; round < 2; ++round) {
      cache.clear();
      auto n = static_cast<int64_t>(prompt.size());
      Tensor next = model->forward_greedy(ids(prompt, 0, n), cache);
      std::vector<int64_t> got;
      for (int64_t i = 0; i < steps; ++i) {
        ASSERT_EQ(next.dtype(), DType::kI64);
        ASSERT_EQ(next.shape(), (Shape{1, 1}));
        got.push_back(next.to_vector<int64_t>()[0]);
        next = model->forward_greedy(next, cache);
      }
      EXPECT_EQ(got, by_logits.tokens) << "round " << round;
    }
    // A forward() step after greedy ones (positions must follow), with ids from the host.
    cache.clear();
    auto n = static_cast<int64_t>(prompt.size());
    Tensor next = model->forward_greedy(ids(prompt, 0, n), cache);
    next = model->forward_greedy(next, cache);
    const int64_t id = next.to_vector<int64_t>()[0];
    EXPECT_EQ(id, by_logits.tokens[1]);
    Tensor logits = model->forward(Tensor::from_vector(std::vector<int64_t>{id}, {1, 1}), cache);
    Tensor pick = ops::argmax(logits.reshape({1, vocab}), 1, true);
    EXPECT_EQ(pick.to_vector<int64_t>()[0], by_logits.tokens[2]);
    EXPECT_EQ(logits.to_double_vector(), by_logits.logits[1]);
  }
}

// greedy_host_ids: on a CUDA step the greedy pick also writes each step's ids into page-locked
// host memory, readable once the step is done and still valid after further steps are queued
// (the bench's loop reads step i's id while step i + 1 runs); elsewhere there are none.
TEST_P(DecodeStepTest, GreedyIdsReachTheHostWithoutACopy) {
  std::string folder = testing::write_tiny_hf_model(folder_.sub("llama"), "llama");
  std::vector<TokenId> prompt = testing::tiny_prompt(6, 3);
  const int64_t steps = 9;
  auto model = load(folder, DType::kBF16, true);
  Decoded by_logits = decode_greedy(*model, prompt, steps);
  KvCache cache = model->new_cache(1, 48);
  for (int round = 0; round < 2; ++round) {
    cache.clear();
    auto n = static_cast<int64_t>(prompt.size());
    Tensor next = model->forward_greedy(ids(prompt, 0, n), cache);
    // The prefill ran as one forward pass of n tokens: no host ids for it.
    EXPECT_EQ(model->greedy_host_ids(cache), nullptr);
    std::vector<const int64_t*> at;
    for (int64_t i = 0; i + 1 < steps; ++i) {
      next = model->forward_greedy(next, cache);
      at.push_back(model->greedy_host_ids(cache));
      if (GetParam().backend() != "cuda") {
        EXPECT_EQ(at.back(), nullptr);
        continue;
      }
      ASSERT_NE(at.back(), nullptr) << "step " << i;
      // Two steps in flight, as in the bench: the earlier one's slot must survive the later.
      if (i % 2 == 1) {
        Device(GetParam()).synchronize();
        EXPECT_EQ(*at[i - 1], by_logits.tokens[i]) << "round " << round << " step " << i - 1;
        EXPECT_EQ(*at[i], by_logits.tokens[i + 1]) << "round " << round << " step " << i;
        EXPECT_NE(at[i - 1], at[i]);
      }
    }
    // A forward() step picks too: its ids are the argmax of the logits it returns.
    Tensor logits = model->forward(Tensor::from_vector(std::vector<int64_t>{1}, {1, 1}), cache);
    const int64_t* picked = model->greedy_host_ids(cache);
    if (GetParam().backend() == "cuda") {
      ASSERT_NE(picked, nullptr);
      Tensor want = ops::argmax(logits.reshape({1, testing::kTinyVocab}), 1, true);
      EXPECT_EQ(*picked, want.to_vector<int64_t>()[0]);  // to_vector waited for the step
    }
  }
}

// The fused rotary + KV append + attention kernel (the default; bf16, head_dim 64 and 128),
// its splits merged through a thread-block cluster (sm_90) or through the global workspace,
// against the unfused step on the same tokens, and against the float64 reference; CUDA only
// (elsewhere the step runs op by op and the variables change nothing).
TEST_P(DecodeStepTest, FusedRopeAttentionMatchesUnfused) {
  if (GetParam().backend() != "cuda") GTEST_SKIP() << "the fused kernel is CUDA's";
  // 90 cached tokens in a cache of 128: more than one pass of the attention's loads, so 2 (head
  // dim 64) or 4 (128) split blocks merge. 400 in 1024: 16 splits of which 7 hold keys (64), or
  // 32, more than a cluster holds, so the workspace merges (128).
  for (int64_t hidden : {256, 512}) {
    testing::TinyOptions tiny;
    tiny.hidden = hidden;  // 4 heads: head_dim 64 or 128
    for (auto [capacity, cached] : {std::pair<int64_t, int64_t>{128, 90}, {1024, 400}})
      check_fused_attention(
          tiny, capacity, cached,
          {{{"FLAGSTONE_ENGINE_ATTN_CLUSTER", "1"}}, {{"FLAGSTONE_ENGINE_ATTN_CLUSTER", "0"}}}, "");
  }
}

// The q/k/v product, rotary, KV append and attention in one kernel of clusters (sm_90, rows of
// whole 4 KiB chunks: the 1B shape's 32 heads of 64 in 8 groups), against the two-kernel step
// (FLAGSTONE_ENGINE_QKV_ATTENTION=0), the unfused step and the reference; the profile names it
// where the device has clusters. 90 cached tokens in 128 and 400 in 1024: each of a group's 16
// splits holds 5-6 or 25-26 keys.
TEST_P(DecodeStepTest, QkvAttentionMatchesUnfused) {
  if (GetParam().backend() != "cuda") GTEST_SKIP() << "the fused kernel is CUDA's";
  testing::TinyOptions tiny;
  tiny.hidden = 2048, tiny.heads = 32, tiny.kv_heads = 8;
  const std::string& arch = GetParam().info().arch;
  const bool clusters = arch.rfind("sm_", 0) == 0 && std::stoi(arch.substr(3)) >= 90;
  for (auto [capacity, cached] : {std::pair<int64_t, int64_t>{128, 90}, {1024, 400}})
    check_fused_attention(
        tiny, capacity, cached,
        {{{"FLAGSTONE_ENGINE_QKV_ATTENTION", "1"}}, {{"FLAGSTONE_ENGINE_QKV_ATTENTION", "0"}}},
        clusters ? "qkv_attention (engine)" : "");
}

void DecodeStepTest::check_fused_attention(testing::TinyOptions tiny, int64_t capacity,
                                           int64_t cached, const std::vector<EnvList>& variants,
                                           const std::string& first_variant_op) {
  SCOPED_TRACE(::testing::Message()
               << "hidden " << tiny.hidden << ", head_dim " << tiny.hidden / tiny.heads << ", "
               << cached << " cached of " << capacity);
  tiny.intermediate = 2 * tiny.hidden;
  tiny.max_positions = capacity;
  const std::string folder = testing::write_tiny_hf_model(
      folder_.sub("llama_h" + std::to_string(tiny.hidden) + "_c" + std::to_string(capacity)),
      "llama", tiny);
  auto ref = reference(folder);
  std::vector<TokenId> prompt = testing::tiny_prompt(cached, 5);
  const std::vector<int64_t> feed{3, 17, 42, 5, 99, 7, 12, 64, 1, 30};
  std::vector<OpTime> profile;
  std::string last_note;
  auto run = [&](Model& model, bool profiled) {
    KvCache cache = model.new_cache(1, capacity);
    model.forward(ids(prompt, 0, static_cast<int64_t>(prompt.size())), cache);
    std::vector<std::vector<double>> out;
    for (int64_t id : feed)
      out.push_back(model.forward(Tensor::from_vector(std::vector<int64_t>{id}, {1, 1}), cache)
                        .to_double_vector());
    if (profiled) {
      profile = model.profile_forward(Tensor::from_vector(std::vector<int64_t>{2}, {1, 1}), cache);
      last_note = model.info().decode_qkv_attention_note;
    }
    return out;
  };
  const auto want = run(*ref, false);
  // The fused kernel is the default; "0" selects rotary + KV append, then paged_attention.
  std::vector<std::vector<double>> unfused;
  {
    testing::ScopedEnv off("FLAGSTONE_ENGINE_ROPE_ATTENTION", "0");
    unfused = run(*load(folder, DType::kBF16, true), false);
  }
  for (size_t v = 0; v < variants.size(); ++v) {
    std::string name;
    std::vector<std::unique_ptr<testing::ScopedEnv>> env;
    for (const auto& [key, value] : variants[v]) {
      name += std::string(key) + "=" + value + " ";
      env.push_back(std::make_unique<testing::ScopedEnv>(key, value));
    }
    SCOPED_TRACE(name);
    const auto fused = run(*load(folder, DType::kBF16, true), v == 0);
    ASSERT_EQ(fused.size(), feed.size());
    // Same weights and dtype: only the order of rounding in rotary and attention differs.
    // Against the reference, bf16 weights and activations (every matrix product rounded)
    // dominate.
    for (size_t i = 0; i < feed.size(); ++i) {
      EXPECT_LT(relative_error(fused[i], unfused[i]), 2e-2) << "step " << i;
      EXPECT_LT(relative_error(fused[i], want[i]), 1e-1) << "step " << i;
    }
    if (v == 0 && !first_variant_op.empty()) {
      bool found = false;
      for (const OpTime& op : profile) found |= op.op == first_variant_op;
      EXPECT_TRUE(found) << "no " << first_variant_op << " in the step's profile (" << last_note
                         << ")";
    }
  }
}

FLAGSTONE_INSTANTIATE_ON_ALL_DEVICES(DecodeStepTest);

}  // namespace
}  // namespace flagstone::engine
