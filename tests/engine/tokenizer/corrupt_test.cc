// Bad input: missing or corrupted tokenizer files, truncated and bit-flipped JSON, broken and
// hostile chat templates. Each must end in a flagstone::Error that names the culprit, never a
// crash, hang or another exception type.
#include <gtest/gtest.h>

#include <random>

#include "fixture_util.h"
#include "flagstone/base/error.h"
#include "flagstone/engine/tokenizer/chat_template.h"
#include "flagstone/engine/tokenizer/tokenizer.h"

namespace flagstone::engine {
namespace {

std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs `fn`; passes if it returns or throws flagstone::Error, fails on anything else.
template <typename Fn>
void only_flagstone_errors(Fn fn, const std::string& what) {
  try {
    fn();
  } catch (const Error&) {
  } catch (const std::exception& e) {
    ADD_FAILURE() << what << ": threw a non-Flagstone exception: " << e.what();
  }
}

TEST(TokenizerErrors, MissingFilesNameThePath) {
  try {
    Tokenizer::from_folder("/nonexistent/model-dir");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kNotFound);
    EXPECT_NE(e.message().find("/nonexistent/model-dir"), std::string::npos) << e.message();
  }
}

TEST(TokenizerErrors, StructuralProblemsAreNamed) {
  auto expect_error = [](const std::string& json, const std::string& needle) {
    try {
      Tokenizer::from_json(json, "", "bad.json");
      ADD_FAILURE() << "accepted: " << json;
    } catch (const Error& e) {
      EXPECT_NE(e.message().find(needle), std::string::npos) << e.message();
      EXPECT_NE(e.message().find("bad.json"), std::string::npos) << e.message();
    }
  };
  expect_error("{not json", "not valid JSON");
  expect_error("[]", "JSON object");
  expect_error(R"({"model": {"type": "Unigram", "vocab": []}})", "Unigram");
  expect_error(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}})", "merge 0");
  expect_error(R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b"]}})",
               "not in the vocabulary");
  expect_error(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},
                   "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(unclosed"},
                                     "behavior": "Isolated"}})",
               "regex");
  expect_error(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},
                   "normalizer": {"type": "Lowercase"}})",
               "Lowercase");
  expect_error(R"({"model": {"type": "BPE", "vocab": {"a": "x"}, "merges": []}})", "vocab");
}

TEST(TokenizerErrors, InvalidUtf8InputIsRejected) {
  auto tok = Tokenizer::from_json(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}})",
                                  "", "tiny.json");
  EXPECT_EQ(tok.encode("aa", false), (std::vector<TokenId>{0, 0}));
  EXPECT_THROW(tok.encode(std::string("a\xff"), false), Error);
  EXPECT_THROW(tok.decode(std::vector<TokenId>{7}), Error);  // id outside the vocabulary
}

TEST(TokenizerErrors, CorruptedTokenizerJson) {
  auto path = test::tokenizer_data("llama3/tokenizer.json");
  FS_REQUIRE_FIXTURE(path);
  std::string good = read_text(path);
  std::mt19937 rng(1234);
  for (int round = 0; round < 60; ++round) {
    std::string bad = good;
    if (round % 2 == 0) {
      bad.resize(std::uniform_int_distribution<std::size_t>(0, good.size() - 1)(rng));
    } else {
      for (int k = 0; k < 8; ++k) {
        std::size_t at = std::uniform_int_distribution<std::size_t>(0, bad.size() - 1)(rng);
        bad[at] = static_cast<char>(std::uniform_int_distribution<int>(0, 255)(rng));
      }
    }
    only_flagstone_errors(
        [&] {
          auto tok = Tokenizer::from_json(bad, "", "mutated.json");
          tok.decode(tok.encode("Hello <|eot_id|> wörld 123", true));
        },
        "round " + std::to_string(round));
  }
}

TEST(ChatTemplateErrors, HostileTemplatesFailCleanly) {
  using Json = nlohmann::ordered_json;
  only_flagstone_errors([] { ChatTemplate(std::string(5000, '(')); }, "deep parens");
  only_flagstone_errors([] { ChatTemplate("{{ " + std::string(5000, '[') + " }}"); }, "deep lists");
  std::string nested;
  for (int i = 0; i < 500; ++i) nested += "{% if true %}";
  only_flagstone_errors([&] { ChatTemplate t(nested); }, "deep ifs");
  EXPECT_THROW(ChatTemplate("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}"
                            "{% endfor %}")
                   .render_context(Json::object()),
               Error);
  EXPECT_THROW(ChatTemplate("{{ 'x' * 1000000000 }}").render_context(Json::object()), Error);
  EXPECT_THROW(ChatTemplate("{{ raise_exception('no') }}").render_context(Json::object()), Error);

  auto fx = test::tokenizer_data("chat_templates.json");
  FS_REQUIRE_FIXTURE(fx);
  auto j = *test::read_json(fx);
  std::string good = j["families"]["qwen2"]["template"];
  Json messages = Json::array({{{"role", "user"}, {"content", "hi"}}});
  std::mt19937 rng(99);
  for (int round = 0; round < 200; ++round) {
    std::string bad = good;
    for (int k = 0; k < 3; ++k) {
      std::size_t at = std::uniform_int_distribution<std::size_t>(0, bad.size() - 1)(rng);
      bad[at] = "{}%-#()[]|.'\" x"[std::uniform_int_distribution<int>(0, 15)(rng)];
    }
    only_flagstone_errors([&] { ChatTemplate(bad, "mutated").render(messages, {}); },
                          "template round " + std::to_string(round));
  }
}

}  // namespace
}  // namespace flagstone::engine
