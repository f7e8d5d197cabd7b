// `flagstone run` end to end on a tiny model folder with a real tokenizer: the JSON output
// agrees with the library's greedy generation, chat mode renders the template and keeps the
// conversation, and bad invocations fail with a message.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/generate/cli_runner.h"
#include "engine/model/tiny_models.h"
#include "flagstone/engine/generate/generator.h"
#include "flagstone/engine/tokenizer/chat_template.h"

namespace flagstone::engine {
namespace {

using Outcome = testing::CliOutcome;

Outcome run_cli(const std::string& args, const std::string& input = "") {
  return testing::run_flagstone("run " + args, input);
}

class RunCommandTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    folder_ = new testing::ScratchFolder("run_cli");
    testing::write_tiny_chat_model(folder_->path());
  }
  static void TearDownTestSuite() { delete folder_; }

  static std::vector<TokenId> library_greedy(const std::vector<TokenId>& prompt, int64_t n) {
    auto model = load_model(folder_->path());
    Tokenizer tokenizer = load_model_tokenizer(folder_->path());
    Generator generator(*model, &tokenizer);
    GenerationOptions options;
    options.max_new_tokens = n;
    options.stop_ids = tokenizer.stop_ids();
    return generator.generate(prompt, options).tokens;
  }

  static testing::ScratchFolder* folder_;
};

testing::ScratchFolder* RunCommandTest::folder_ = nullptr;

TEST_F(RunCommandTest, JsonMatchesLibraryGreedy) {
  Outcome r = run_cli("-m " + folder_->path() + " -p 'Once upon a time' -n 12 --temp 0 --json");
  ASSERT_EQ(r.status, 0) << r.err;
  nlohmann::json out = nlohmann::json::parse(r.out);
  Tokenizer tokenizer = load_model_tokenizer(folder_->path());
  std::vector<TokenId> expected = library_greedy(tokenizer.encode("Once upon a time"), 12);
  EXPECT_EQ(out["tokens"].get<std::vector<TokenId>>(), expected);
  EXPECT_EQ(out["architecture"], "llama");
  EXPECT_EQ(out["sampling"]["temperature"], 0.0);
  EXPECT_EQ(out["prompt_tokens"], tokenizer.encode("Once upon a time").size());
  EXPECT_EQ(out["text"], tokenizer.decode(expected, true));
}

TEST_F(RunCommandTest, StreamedTextIsTheGeneratedText) {
  Outcome json = run_cli("-m " + folder_->path() + " -p 'Hello' -n 10 --temp 0 --json");
  Outcome text = run_cli("-m " + folder_->path() + " -p 'Hello' -n 10 --temp 0");
  ASSERT_EQ(text.status, 0) << text.err;
  std::string expected = nlohmann::json::parse(json.out)["text"];
  EXPECT_EQ(text.out.substr(0, expected.size()), expected);
  EXPECT_NE(text.err.find("finish: length"), std::string::npos) << text.err;
}

TEST_F(RunCommandTest, ChatRendersTheTemplateAndKeepsTheConversation) {
  Outcome r = run_cli("-m " + folder_->path() + " --chat --system 'Be brief.' -n 6 --temp 0 --json",
                      "Hi there\\nAnd then?\\n");
  ASSERT_EQ(r.status, 0) << r.err;
  std::istringstream lines(r.out);
  std::string first, second;
  std::getline(lines, first);
  std::getline(lines, second);
  nlohmann::json one = nlohmann::json::parse(first), two = nlohmann::json::parse(second);

  Tokenizer tokenizer = load_model_tokenizer(folder_->path());
  ChatTemplate chat(tokenizer.chat_template());
  ChatTemplateOptions options;
  options.bos_token = tokenizer.bos_token();
  options.eos_token = tokenizer.eos_token();
  nlohmann::ordered_json messages = {{{"role", "system"}, {"content", "Be brief."}},
                                     {{"role", "user"}, {"content", "Hi there"}}};
  std::vector<TokenId> prompt = tokenizer.encode(chat.render(messages, options), false);
  EXPECT_EQ(one["prompt_tokens"], prompt.size());
  EXPECT_EQ(one["tokens"].get<std::vector<TokenId>>(), library_greedy(prompt, 6));
  EXPECT_GT(two["prompt_tokens"].get<int64_t>(), one["prompt_tokens"].get<int64_t>());
  EXPECT_GT(two["reused_tokens"].get<int64_t>(), 0);
}

TEST_F(RunCommandTest, BadInvocationsExplainThemselves) {
  Outcome no_prompt = run_cli("-m " + folder_->path());
  EXPECT_NE(no_prompt.status, 0);
  EXPECT_NE(no_prompt.err.find("-p"), std::string::npos) << no_prompt.err;
  Outcome missing = run_cli("-m /nonexistent/model -p hi");
  EXPECT_NE(missing.status, 0);
  EXPECT_NE(missing.err.find("/nonexistent/model"), std::string::npos) << missing.err;
  Outcome bad_device = run_cli("-m " + folder_->path() + " -p hi --device nope:3");
  EXPECT_NE(bad_device.status, 0);
  EXPECT_NE(bad_device.err.find("nope"), std::string::npos) << bad_device.err;
  Outcome bad_temp = run_cli("-m " + folder_->path() + " -p hi --temp -1");
  EXPECT_NE(bad_temp.status, 0);
  EXPECT_NE(bad_temp.err.find("temperature"), std::string::npos) << bad_temp.err;
}

}  // namespace
}  // namespace flagstone::engine
