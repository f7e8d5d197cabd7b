// The streaming detokenizer: text emitted token by token must be valid UTF-8 at every step and
// add up to the full decode, for byte-level BPE (bytes split across tokens) and for
// SentencePiece byte fallback (<0xNN> tokens), on the reference fixtures' texts.
#include "flagstone/engine/tokenizer/streaming_detokenizer.h"

#include <gtest/gtest.h>

#include "fixture_util.h"
#include "flagstone/base/error.h"

namespace flagstone::engine {
namespace {

bool valid_utf8(const std::string& s) {
  for (std::size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (std::size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    i += n;
  }
  return true;
}

// A GGUF "gpt2" vocabulary of the 256 byte tokens only and no merges: every byte is its own
// token, so every multi-byte character is split across tokens. Decoding it is the identity.
Tokenizer bytes_only_tokenizer() {
  GgufTokenizerData d;
  d.source = "bytes-only";
  d.model = "gpt2";
  d.pre = "gpt-2";
  // The GPT-2 byte alphabet, written out independently of the library's table.
  std::vector<int> printable;
  for (int b = '!'; b <= '~'; ++b) printable.push_back(b);
  for (int b = 0xA1; b <= 0xAC; ++b) printable.push_back(b);
  for (int b = 0xAE; b <= 0xFF; ++b) printable.push_back(b);
  int extra = 0;
  d.tokens.resize(256);
  for (int b = 0; b < 256; ++b) {
    bool p = std::find(printable.begin(), printable.end(), b) != printable.end();
    char32_t cp = p ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + extra++);
    std::string s;
    if (cp < 0x80) {
      s += static_cast<char>(cp);
    } else {
      s += static_cast<char>(0xC0 | (cp >> 6));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    }
    d.tokens[static_cast<std::size_t>(b)] = s;
  }
  d.token_types.assign(256, 1);
  return Tokenizer::from_gguf(d);
}

void check_stream(const Tokenizer& tok, const std::string& text) {
  auto ids = tok.encode(text, false);
  StreamingDetokenizer stream(tok);
  std::string joined;
  for (TokenId id : ids) {
    std::string piece = stream.push(id);
    EXPECT_TRUE(valid_utf8(piece)) << "invalid UTF-8 emitted while streaming \"" << text << "\"";
    joined += piece;
  }
  joined += stream.flush();
  EXPECT_EQ(joined, tok.decode(ids, true)) << "text: \"" << text << "\"";
}

TEST(StreamingDetokenizer, ByteLevelRoundTripsMultiByteCharacters) {
  Tokenizer tok = bytes_only_tokenizer();
  for (std::string text :
       {"plain ascii", "Größe", "敏捷的棕色狐狸",
        "emoji 😀👍🏽 ZWJ 👩‍👩‍👧‍👦 done", "مرحبا", "mixed é😀x"}) {
    // Decoding is the identity here, whatever the library does internally.
    EXPECT_EQ(tok.decode(tok.encode(text, false)), text);
    check_stream(tok, text);
  }
}

TEST(StreamingDetokenizer, HoldsBackIncompleteCharacters) {
  Tokenizer tok = bytes_only_tokenizer();
  auto ids = tok.encode("😀", false);
  ASSERT_EQ(ids.size(), 4u);  // four bytes, four tokens
  StreamingDetokenizer stream(tok);
  EXPECT_EQ(stream.push(ids[0]), "");
  EXPECT_EQ(stream.push(ids[1]), "");
  EXPECT_EQ(stream.push(ids[2]), "");
  EXPECT_EQ(stream.push(ids[3]), "😀");
  // A character cut off at the end comes out as U+FFFD on flush, as decode() would give it.
  EXPECT_EQ(stream.push(ids[0]), "");
  EXPECT_EQ(stream.flush(), "\xEF\xBF\xBD");
}

TEST(StreamingDetokenizer, SentencePieceByteFallback) {
  auto path = test::tokenizer_data("spm/cases.json");
  FS_REQUIRE_FIXTURE(path);
  auto tok = Tokenizer::from_folder(test::tokenizer_data("spm"));
  auto fx = *test::read_json(path);
  for (const auto& c : fx["cases"]) check_stream(tok, c["text"].get<std::string>());
}

TEST(StreamingDetokenizer, HuggingFaceFamilies) {
  int found = 0;
  for (const char* family : {"gpt2", "llama3", "qwen2", "llama2", "mistral"}) {
    auto dir = test::tokenizer_data(family);
    if (!std::filesystem::exists(dir / "cases.json")) continue;
    ++found;
    auto tok = Tokenizer::from_folder(dir);
    auto fx = *test::read_json(dir / "cases.json");
    for (const auto& c : fx["cases"]) check_stream(tok, c["text"].get<std::string>());
  }
  if (found == 0)
    GTEST_SKIP() << "no HF family fixtures under " << test::tokenizer_data("").string();
}

}  // namespace
}  // namespace flagstone::engine
