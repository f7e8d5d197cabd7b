// A model folder's tokenizer written as GGUF metadata (what `flagstone convert` embeds) must
// tokenize exactly as the folder does according to the reference libraries: the HF tokenizers
// fixtures of every family, and sentencepiece's ids plus the llama.cpp-style vocabulary of the
// spm fixture.
#include <gtest/gtest.h>

#include <algorithm>

#include "fixture_util.h"
#include "flagstone/base/error.h"
#include "flagstone/engine/tokenizer/tokenizer.h"

namespace flagstone::engine {
namespace {

using test::ids_of;
using test::show;

class GgufExport : public ::testing::TestWithParam<const char*> {};

TEST_P(GgufExport, EmbeddedVocabularyMatchesTokenizersLibrary) {
  const auto dir = test::tokenizer_data(GetParam());
  FS_REQUIRE_FIXTURE(dir / "cases.json");
  const nlohmann::json fx = *test::read_json(dir / "cases.json");
  GgufTokenizerData data = gguf_tokenizer_data_from_folder(dir);
  Tokenizer folder = Tokenizer::from_folder(dir);
  Tokenizer tok = Tokenizer::from_gguf(data);
  EXPECT_EQ(tok.vocab_size(), fx["vocab_size"].get<std::size_t>());
  EXPECT_EQ(tok.bos_id(), folder.bos_id());
  EXPECT_EQ(tok.eos_id(), folder.eos_id());
  EXPECT_EQ(tok.chat_template(), folder.chat_template());
  for (TokenId id : folder.stop_ids()) {
    EXPECT_NE(std::find(tok.stop_ids().begin(), tok.stop_ids().end(), id), tok.stop_ids().end())
        << "stop id " << id << " lost";
  }
  // The folder's own tokenizer_config.json decides BOS; "ids" are tokenizers' with the file's
  // post-processor, which both follow.
  bool config_bos = folder.encode("a", true).size() > folder.encode("a", false).size();
  // Two things GGUF's tokenizer.ggml.* keys cannot say, so llama.cpp's converter loses them too:
  // whitespace stripping around added tokens (lstrip/rstrip), and Metaspace's prepend_scheme
  // "first" (a space prefix for the first segment only, not when the text already starts with
  // one). Texts that depend on them are listed and skipped; every other text must match.
  const nlohmann::json tj = *test::read_json(dir / "tokenizer.json");
  std::vector<std::string> stripping;
  for (const auto& a : tj["added_tokens"])
    if (a.value("lstrip", false) || a.value("rstrip", false)) stripping.push_back(a["content"]);
  const bool first_only =
      tj["pre_tokenizer"].is_object() && tj["pre_tokenizer"].value("prepend_scheme", "") == "first";
  int compared = 0, skipped = 0;
  for (const auto& c : fx["cases"]) {
    std::string text = c["text"];
    SCOPED_TRACE("text: \"" + text + "\"");
    bool depends = false;
    for (const std::string& t : stripping) depends |= text.find(t) != std::string::npos;
    if (first_only) {
      depends |= !text.empty() && (text[0] == ' ' || text[0] == '\t' || text[0] == '\n');
      for (const AddedToken& a : folder.added_tokens())
        depends |= text.find(a.content) != std::string::npos;
    }
    if (depends) {
      ++skipped;
      continue;
    }
    ++compared;
    auto want = ids_of(c["ids_no_special"]);
    auto got = tok.encode(text, false);
    EXPECT_EQ(got, want) << " got " << show(got) << "\nwant " << show(want);
    EXPECT_EQ(tok.encode(text, true).size() - got.size(), config_bos ? 1u : 0u);
    EXPECT_EQ(tok.decode(ids_of(c["ids"]), true), c["decoded_skip_special"].get<std::string>());
  }
  // The exceptions stay exceptions: most of each fixture is compared.
  EXPECT_GT(compared, 4 * skipped) << compared << " compared, " << skipped << " skipped";
}

INSTANTIATE_TEST_SUITE_P(Families, GgufExport,
                         ::testing::Values("gpt2", "llama3", "qwen2", "llama2", "mistral"),
                         [](const auto& info) { return std::string(info.param); });

// The spm fixture's gguf_vocab.json was written from sentencepiece's model file as llama.cpp's
// converter does; ours comes from tokenizer.json alone. Tokens, types and flags must agree, and
// the ids must be sentencepiece's.
TEST(GgufExportSpm, MatchesSentencepieceVocabularyAndIds) {
  const auto dir = test::tokenizer_data("spm");
  FS_REQUIRE_FIXTURE(dir / "gguf_vocab.json");
  const nlohmann::json vocab = *test::read_json(dir / "gguf_vocab.json");
  const nlohmann::json cases = *test::read_json(dir / "cases.json");
  GgufTokenizerData data = gguf_tokenizer_data_from_folder(dir);
  EXPECT_EQ(data.model, "llama");
  EXPECT_EQ(data.tokens, vocab["tokens"].get<std::vector<std::string>>());
  EXPECT_EQ(data.token_types, vocab["token_types"].get<std::vector<std::int32_t>>());
  EXPECT_EQ(data.bos_id, vocab["bos_id"].get<std::int64_t>());
  EXPECT_EQ(data.eos_id, vocab["eos_id"].get<std::int64_t>());
  EXPECT_EQ(data.unk_id, vocab["unk_id"].get<std::int64_t>());
  EXPECT_EQ(data.add_bos_token, vocab["add_bos_token"].get<bool>());
  EXPECT_EQ(data.add_space_prefix, vocab["add_space_prefix"].get<bool>());
  Tokenizer tok = Tokenizer::from_gguf(data);
  for (const auto& c : cases["cases"]) {
    std::string text = c["text"];
    auto want = ids_of(c["ids"]);
    auto got = tok.encode(text, false);
    EXPECT_EQ(got, want) << "text: \"" << text << "\"\n got " << show(got) << "\nwant "
                         << show(want);
  }
}

TEST(GgufExportErrors, MissingTokenizerJsonIsNamed) {
  try {
    gguf_tokenizer_data_from_folder(test::tokenizer_data("does-not-exist"));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kNotFound);
    EXPECT_NE(std::string(e.what()).find("tokenizer.json"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace flagstone::engine
