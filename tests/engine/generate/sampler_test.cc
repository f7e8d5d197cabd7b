// Sampling: greedy is the first maximum, the repetition penalty follows Hugging Face's rule,
// seeded draws repeat, filters keep only what they should, and draws follow the distribution.
#include "flagstone/engine/generate/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "support/devices.h"

namespace flagstone::engine {
namespace {

class SamplerTest : public ::testing::TestWithParam<Device> {
 protected:
  Tensor logits(const std::vector<float>& values, int64_t rows) {
    auto cols = static_cast<int64_t>(values.size()) / rows;
    return Tensor::from_vector(values, {rows, cols}, GetParam());
  }
};

TEST_P(SamplerTest, GreedyTakesTheFirstMaximumOfEachRow) {
  Sampler sampler;
  std::vector<float> v{0.1f, 2.0f, -1.0f, 2.0f, 5.0f, -3.0f, 4.0f, 1.0f};
  EXPECT_EQ(sampler.sample(logits(v, 2), {{}, {}}), (std::vector<int64_t>{1, 0}));
}

TEST_P(SamplerTest, RepetitionPenaltyFollowsTransformers) {
  std::mt19937 gen(5);
  std::normal_distribution<float> normal(0, 2);
  std::vector<float> v(2 * 10);
  for (float& x : v) x = normal(gen);
  SamplingOptions options;
  options.repetition_penalty = 1.3;
  Sampler sampler(options);
  std::vector<std::vector<int32_t>> seen{{1, 3, 3, 7}, {}};
  std::vector<double> got = sampler.penalize(logits(v, 2), seen).to_double_vector();
  for (int r = 0; r < 2; ++r)
    for (int j = 0; j < 10; ++j) {
      double x = v[r * 10 + j];
      bool hit = r == 0 && (j == 1 || j == 3 || j == 7);
      double expected = hit ? (x < 0 ? x * 1.3 : x / 1.3) : x;
      EXPECT_NEAR(got[r * 10 + j], expected, 1e-6 * std::abs(expected)) << r << "," << j;
    }
}

TEST_P(SamplerTest, PenaltyCanChangeTheGreedyChoice) {
  SamplingOptions options;
  options.repetition_penalty = 2.0;
  Sampler sampler(options);
  EXPECT_EQ(sampler.sample(logits({1.0f, 3.0f, 2.0f}, 1), {{1}}), (std::vector<int64_t>{2}));
}

TEST_P(SamplerTest, SeededDrawsRepeatAndSeedsDiffer) {
  std::vector<float> flat(64, 0.0f);
  auto draws = [&](uint64_t seed) {
    SamplingOptions options;
    options.temperature = 1.0;
    options.seed = seed;
    Sampler sampler(options);
    std::vector<int64_t> out;
    for (int i = 0; i < 20; ++i) out.push_back(sampler.sample(logits(flat, 1), {{}})[0]);
    return out;
  };
  EXPECT_EQ(draws(42), draws(42));
  EXPECT_NE(draws(42), draws(43));
}

TEST_P(SamplerTest, FiltersKeepOnlyAllowedTokens) {
  std::vector<float> v{0.0f, 3.0f, 2.9f, 1.0f, -1.0f, 2.8f};
  for (int i = 0; i < 30; ++i) {
    SamplingOptions options;
    options.temperature = 1.0;
    options.seed = static_cast<uint64_t>(i);
    options.top_k = 2;
    int64_t id = Sampler(options).sample(logits(v, 1), {{}})[0];
    EXPECT_TRUE(id == 1 || id == 2) << id;
    options.top_k = 0;
    options.min_p = 1.0;  // only tokens as likely as the best
    EXPECT_EQ(Sampler(options).sample(logits(v, 1), {{}})[0], 1);
  }
}

TEST_P(SamplerTest, DrawsFollowTheTemperatureScaledDistribution) {
  // p = softmax(logits / T) with T = 2: probabilities 0.6, 0.3, 0.1 before scaling.
  std::vector<double> p{0.6, 0.3, 0.1};
  std::vector<float> v;
  for (double x : p) v.push_back(static_cast<float>(2.0 * std::log(x)));
  SamplingOptions options;
  options.temperature = 2.0;
  options.seed = 9;
  Sampler sampler(options);
  const int n = 1500;
  std::vector<int> counts(3);
  for (int i = 0; i < n; ++i) ++counts[sampler.sample(logits(v, 1), {{}})[0]];
  for (int j = 0; j < 3; ++j) {
    double sigma = std::sqrt(n * p[j] * (1 - p[j]));
    EXPECT_NEAR(counts[j], n * p[j], 4.5 * sigma) << "token " << j;
  }
}

TEST(SamplerOptions, OutOfRangeValuesAreNamed) {
  auto message = [](SamplingOptions o) {
    try {
      Sampler s(o);
    } catch (const Error& e) {
      return e.message();
    }
    return std::string();
  };
  SamplingOptions o;
  o.temperature = -1;
  EXPECT_NE(message(o).find("temperature"), std::string::npos);
  o = {};
  o.top_p = 0;
  EXPECT_NE(message(o).find("top_p"), std::string::npos);
  o = {};
  o.min_p = 2;
  EXPECT_NE(message(o).find("min_p"), std::string::npos);
  o = {};
  o.top_k = -1;
  EXPECT_NE(message(o).find("top_k"), std::string::npos);
  o = {};
  o.repetition_penalty = 0;
  EXPECT_NE(message(o).find("repetition_penalty"), std::string::npos);
}

FLAGSTONE_INSTANTIATE_ON_ALL_DEVICES(SamplerTest);

}  // namespace
}  // namespace flagstone::engine
