// Streaming detokenization with the SentencePiece-style test tokenizer: pieces add up to the
// full decode, never split a UTF-8 character, and stop strings cut the text before them.
#include "flagstone/engine/generate/text_stream.h"

#include <gtest/gtest.h>

#include <string>

namespace flagstone::engine {
namespace {

const Tokenizer& tokenizer() {
  static const Tokenizer t =
      Tokenizer::from_folder(std::string(FLAGSTONE_TEST_DATA) + "/tokenizer/spm");
  return t;
}

bool valid_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 2) return false;
    i += n;
  }
  return true;
}

TEST(TextStream, PiecesAddUpToTheFullDecode) {
  const std::string text = "Hello world! Emoji 😀 and ünïcödé, digits 12345\n  spaces  end";
  std::vector<TokenId> ids = tokenizer().encode(text, false);
  TextStream stream(tokenizer(), {});
  std::string joined;
  for (TokenId id : ids) {
    std::string piece = stream.push(id);
    EXPECT_TRUE(valid_utf8(piece)) << "piece splits a character: " << piece;
    joined += piece;
  }
  joined += stream.finish();
  EXPECT_EQ(joined, tokenizer().decode(ids, true));
  EXPECT_FALSE(stream.stopped());
}

TEST(TextStream, StopStringCutsTheText) {
  std::vector<TokenId> ids = tokenizer().encode("one two three four five", false);
  TextStream stream(tokenizer(), {"four", "never"});
  std::string joined;
  size_t pushed = 0;
  for (TokenId id : ids) {
    joined += stream.push(id);
    ++pushed;
    if (stream.stopped()) break;
  }
  EXPECT_TRUE(stream.stopped());
  EXPECT_EQ(joined, "one two three ");
  EXPECT_EQ(stream.text(), joined);
  EXPECT_EQ(stream.finish(), "");
  EXPECT_LE(pushed, ids.size());
}

TEST(TextStream, HoldsBackAPossibleStopPrefix) {
  // Whatever is not yet emitted must be a prefix of the stop string "three!" (it may still
  // become it), and it is released once it cannot.
  std::vector<TokenId> ids = tokenizer().encode("one two three four", false);
  TextStream stream(tokenizer(), {"three!"});
  std::string joined;
  bool held = false;
  for (size_t k = 0; k < ids.size(); ++k) {
    joined += stream.push(ids[k]);
    std::vector<TokenId> prefix(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(k + 1));
    std::string full = tokenizer().decode(prefix, true);
    ASSERT_EQ(full.compare(0, joined.size(), joined), 0);
    std::string tail = full.substr(joined.size());
    EXPECT_EQ(std::string("three!").compare(0, tail.size(), tail), 0) << "held: " << tail;
    held = held || !tail.empty();
  }
  EXPECT_TRUE(held);
  joined += stream.finish();
  EXPECT_EQ(joined, "one two three four");
  EXPECT_FALSE(stream.stopped());
}

}  // namespace
}  // namespace flagstone::engine
