// SentencePiece conformance: a BPE model with byte fallback trained by sentencepiece, loaded both
// as tokenizer.json (HF's legacy Llama layout) and as a GGUF "llama" vocabulary, must give
// sentencepiece's own ids and decoded text.
#include <gtest/gtest.h>

#include "fixture_util.h"
#include "flagstone/base/error.h"
#include "flagstone/engine/tokenizer/tokenizer.h"

namespace flagstone::engine {
namespace {

using test::ids_of;
using test::show;

GgufTokenizerData gguf_from_json(const nlohmann::json& j) {
  GgufTokenizerData d;
  d.source = "spm/gguf_vocab.json";
  d.model = j["model"];
  d.pre = j["pre"];
  d.tokens = j["tokens"].get<std::vector<std::string>>();
  d.scores = j["scores"].get<std::vector<float>>();
  d.token_types = j["token_types"].get<std::vector<std::int32_t>>();
  d.bos_id = j["bos_id"].get<std::int64_t>();
  d.eos_id = j["eos_id"].get<std::int64_t>();
  d.unk_id = j["unk_id"].get<std::int64_t>();
  d.add_bos_token = j["add_bos_token"].get<bool>();
  d.add_space_prefix = j["add_space_prefix"].get<bool>();
  return d;
}

class SpmFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cases = test::tokenizer_data("spm/cases.json");
    FS_REQUIRE_FIXTURE(cases);
    cases_ = *test::read_json(cases);
    ASSERT_GT(cases_["cases"].size(), 10u);
  }
  nlohmann::json cases_;
};

TEST_F(SpmFixture, TokenizerJsonMatchesSentencepiece) {
  auto tok = Tokenizer::from_files(test::tokenizer_data("spm/tokenizer.json"));
  for (const auto& c : cases_["cases"]) {
    std::string text = c["text"];
    auto want = ids_of(c["ids"]);
    auto got = tok.encode(text, /*add_special_tokens=*/false);
    EXPECT_EQ(got, want) << "text: \"" << text << "\"\n got " << show(got) << "\nwant "
                         << show(want);
    EXPECT_EQ(tok.decode(want), c["decoded"].get<std::string>()) << "text: \"" << text << "\"";
  }
}

TEST_F(SpmFixture, ConfigAddsBos) {
  auto tok = Tokenizer::from_folder(test::tokenizer_data("spm"));
  ASSERT_TRUE(tok.bos_id().has_value());
  EXPECT_EQ(tok.bos_token(), "<s>");
  EXPECT_EQ(tok.eos_token(), "</s>");
  for (const auto& c : cases_["cases"]) {
    std::vector<TokenId> want{*tok.bos_id()};
    for (TokenId id : ids_of(c["ids"])) want.push_back(id);
    EXPECT_EQ(tok.encode(c["text"].get<std::string>()), want) << c["text"];
    // Special tokens are dropped on request; BOS decodes to nothing then.
    EXPECT_EQ(tok.decode(want, /*skip_special_tokens=*/true), c["decoded"].get<std::string>());
  }
  EXPECT_FALSE(tok.chat_template().empty());
}

TEST_F(SpmFixture, GgufVocabularyMatchesSentencepiece) {
  auto path = test::tokenizer_data("spm/gguf_vocab.json");
  FS_REQUIRE_FIXTURE(path);
  auto tok = Tokenizer::from_gguf(gguf_from_json(*test::read_json(path)));
  ASSERT_TRUE(tok.bos_id().has_value());
  for (const auto& c : cases_["cases"]) {
    std::string text = c["text"];
    auto want = ids_of(c["ids"]);
    auto got = tok.encode(text, false);
    EXPECT_EQ(got, want) << "text: \"" << text << "\"\n got " << show(got) << "\nwant "
                         << show(want);
    want.insert(want.begin(), *tok.bos_id());
    EXPECT_EQ(tok.encode(text, true), want);
    EXPECT_EQ(tok.decode(want, true), c["decoded"].get<std::string>());
  }
}

TEST_F(SpmFixture, GgufRejectsBadMetadata) {
  auto path = test::tokenizer_data("spm/gguf_vocab.json");
  FS_REQUIRE_FIXTURE(path);
  auto good = gguf_from_json(*test::read_json(path));
  auto bad = good;
  bad.scores.pop_back();
  EXPECT_THROW(Tokenizer::from_gguf(bad), flagstone::Error);
  bad = good;
  bad.model = "bert";
  EXPECT_THROW(Tokenizer::from_gguf(bad), flagstone::Error);
  bad = good;
  bad.bos_id = static_cast<std::int64_t>(good.tokens.size());
  try {
    Tokenizer::from_gguf(bad);
    FAIL() << "out-of-range bos id accepted";
  } catch (const flagstone::Error& e) {
    EXPECT_NE(e.message().find("bos_token_id"), std::string::npos) << e.message();
  }
}

}  // namespace
}  // namespace flagstone::engine
