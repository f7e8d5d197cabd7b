// Replays every file of tests/fuzz/corpus/<parser>/ (seeds and past findings) through the same
// code as the fuzz targets: each must parse or throw flagstone::Error.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "fuzz/exercise.h"

namespace flagstone::fuzz {
namespace {

void replay(const std::string& parser, bool (*exercise)(const uint8_t*, size_t)) {
  std::filesystem::path dir = std::filesystem::path(FLAGSTONE_FUZZ_CORPUS) / parser;
  if (!std::filesystem::exists(dir)) GTEST_SKIP() << "no corpus at " << dir;
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    ++files;
    try {
      exercise(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    } catch (const Error&) {
    } catch (const std::exception& e) {
      ADD_FAILURE() << entry.path() << ": non-flagstone exception " << e.what();
    }
  }
  EXPECT_GT(files, 0) << dir;
}

TEST(FuzzCorpus, Safetensors) {
  replay("safetensors", &exercise_safetensors);
}
TEST(FuzzCorpus, Gguf) {
  replay("gguf", &exercise_gguf);
}
TEST(FuzzCorpus, TokenizerJson) {
  replay("tokenizer_json", &exercise_tokenizer_json);
}
TEST(FuzzCorpus, ChatTemplate) {
  replay("chat_template", &exercise_chat_template);
}

}  // namespace
}  // namespace flagstone::fuzz
