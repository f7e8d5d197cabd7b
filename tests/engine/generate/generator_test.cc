// Generation over a tiny llama with the test tokenizer: stop ids, stop strings, length and
// context limits, cancellation, prefix reuse across turns, streaming, seeded sampling.
#include "flagstone/engine/generate/generator.h"

#include <gtest/gtest.h>

#include "engine/model/tiny_models.h"

namespace flagstone::engine {
namespace {

class GeneratorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    folder_ = new testing::ScratchFolder("generator");
    testing::write_tiny_chat_model(folder_->path());
    model_ = load_model(folder_->path()).release();
    tokenizer_ = new Tokenizer(load_model_tokenizer(folder_->path()));
  }
  static void TearDownTestSuite() {
    delete tokenizer_;
    delete model_;
    delete folder_;
  }

  std::vector<TokenId> prompt(const std::string& text) const { return tokenizer_->encode(text); }
  GenerationOptions greedy(int64_t count) const {
    GenerationOptions options;
    options.max_new_tokens = count;
    return options;
  }

  static testing::ScratchFolder* folder_;
  static Model* model_;
  static Tokenizer* tokenizer_;
};

testing::ScratchFolder* GeneratorTest::folder_ = nullptr;
Model* GeneratorTest::model_ = nullptr;
Tokenizer* GeneratorTest::tokenizer_ = nullptr;

TEST_F(GeneratorTest, StopsAtLengthThenAtAStopId) {
  Generator generator(*model_, tokenizer_, 64);
  GenerationResult full = generator.generate(prompt("Once upon a time"), greedy(10));
  EXPECT_EQ(full.finish_reason, "length");
  ASSERT_EQ(full.tokens.size(), 10u);
  EXPECT_EQ(full.stats.generated_tokens, 10);

  GenerationOptions options = greedy(10);
  options.stop_ids = {full.tokens[3]};
  auto first = std::find(full.tokens.begin(), full.tokens.end(), full.tokens[3]);
  GenerationResult stopped = generator.generate(prompt("Once upon a time"), options);
  EXPECT_EQ(stopped.finish_reason, "eos");
  EXPECT_EQ(stopped.tokens, std::vector<TokenId>(full.tokens.begin(), first + 1));
}

TEST_F(GeneratorTest, TextAndStreamAgreeWithTheTokenizer) {
  Generator generator(*model_, tokenizer_, 64);
  std::string streamed;
  int events = 0;
  GenerationResult result =
      generator.generate(prompt("The weather today"), greedy(24), [&](const StreamEvent& e) {
        streamed += e.text;
        ++events;
        return true;
      });
  EXPECT_GE(events, 24);
  EXPECT_EQ(streamed, result.text);
  EXPECT_EQ(result.text, tokenizer_->decode(result.tokens, true));
}

TEST_F(GeneratorTest, StopStringEndsTheText) {
  Generator generator(*model_, tokenizer_, 64);
  GenerationResult free_run = generator.generate(prompt("A story:"), greedy(30));
  ASSERT_GT(free_run.text.size(), 8u) << free_run.text;
  std::string stop = free_run.text.substr(free_run.text.size() / 2, 3);
  size_t at = free_run.text.find(stop);
  GenerationOptions options = greedy(30);
  options.stop_strings = {stop};
  GenerationResult result = generator.generate(prompt("A story:"), options);
  EXPECT_EQ(result.finish_reason, "stop");
  EXPECT_EQ(result.text, free_run.text.substr(0, at));
  EXPECT_LT(result.tokens.size(), free_run.tokens.size());
}

TEST_F(GeneratorTest, CallbackCancels) {
  Generator generator(*model_, tokenizer_, 64);
  int calls = 0;
  GenerationResult result =
      generator.generate(prompt("Hi"), greedy(20), [&](const StreamEvent&) { return ++calls < 3; });
  EXPECT_EQ(result.finish_reason, "cancelled");
  EXPECT_EQ(result.tokens.size(), 3u);
}

TEST_F(GeneratorTest, FullContextEndsGeneration) {
  Generator generator(*model_, nullptr, 8);
  std::vector<TokenId> six = testing::tiny_prompt(6);
  GenerationResult result = generator.generate(six, greedy(10));
  EXPECT_EQ(result.finish_reason, "context");
  EXPECT_EQ(result.tokens.size(), 3u);  // 6 + 2 fill the cache; the third needs no room
  EXPECT_THROW(generator.generate(testing::tiny_prompt(8), greedy(1)), Error);
}

TEST_F(GeneratorTest, LaterTurnsReuseTheCachedPrefix) {
  std::vector<TokenId> first = prompt("[INST] Hello there [/INST]");
  Generator chat(*model_, tokenizer_, 96);
  GenerationResult reply = chat.generate(first, greedy(8));
  EXPECT_EQ(reply.stats.reused_tokens, 0);

  std::vector<TokenId> second = first;
  second.insert(second.end(), reply.tokens.begin(), reply.tokens.end());
  std::vector<TokenId> more = tokenizer_->encode(" [INST] And then? [/INST]", false);
  second.insert(second.end(), more.begin(), more.end());
  GenerationResult continued = chat.generate(second, greedy(8));
  // Everything but the last reply token (sampled, never run through the model) was cached.
  EXPECT_EQ(continued.stats.reused_tokens,
            static_cast<int64_t>(first.size() + reply.tokens.size() - 1));

  Generator fresh(*model_, tokenizer_, 96);
  EXPECT_EQ(continued.tokens, fresh.generate(second, greedy(8)).tokens);
  // The same prompt again recomputes only its last token.
  GenerationResult again = fresh.generate(second, greedy(8));
  EXPECT_EQ(again.stats.reused_tokens, static_cast<int64_t>(second.size() - 1));
  EXPECT_EQ(again.tokens, continued.tokens);
}

TEST_F(GeneratorTest, SeededSamplingRepeats) {
  GenerationOptions options = greedy(12);
  options.sampling.temperature = 1.0;
  options.sampling.top_p = 0.9;
  options.sampling.seed = 1234;
  Generator a(*model_, tokenizer_, 64), b(*model_, tokenizer_, 64);
  EXPECT_EQ(a.generate(prompt("Roll"), options).tokens, b.generate(prompt("Roll"), options).tokens);
}

TEST_F(GeneratorTest, BadPromptsAreRefused) {
  Generator generator(*model_, tokenizer_, 16);
  EXPECT_THROW(generator.generate({}, greedy(1)), Error);
  EXPECT_THROW(generator.generate({1, 900}, greedy(1)), Error);
  Generator no_text(*model_, nullptr, 16);
  GenerationOptions options = greedy(2);
  options.stop_strings = {"x"};
  EXPECT_THROW(no_text.generate({1, 5}, options), Error);
}

}  // namespace
}  // namespace flagstone::engine
