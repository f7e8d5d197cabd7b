// Corrupted files: every truncation and many flipped bytes of small valid safetensors and GGUF
// files go through the same code as the fuzz targets; each must parse or throw flagstone::Error,
// never crash, hang or throw anything else (run under ASan/UBSan in CI).
#include <gtest/gtest.h>

#include <random>

#include "engine/format/test_util.h"
#include "fuzz/exercise.h"

namespace flagstone::engine::format {
namespace {

std::vector<std::byte> small_safetensors() {
  SafetensorsWriter w;
  w.set_metadata("format", "pt");
  std::vector<float> a = {1, 2, 3, 4, 5, 6};
  std::vector<uint16_t> b = {0x3c00, 0xc000, 0x7c00};
  std::vector<int64_t> c = {7, -8};
  w.add("model.layers.0.weight", DType::kF32, {2, 3}, std::as_bytes(std::span(a)));
  w.add("b", DType::kF16, {3}, std::as_bytes(std::span(b)));
  w.add("c", DType::kI64, {2, 1}, std::as_bytes(std::span(c)));
  return w.serialize();
}

std::vector<std::byte> small_gguf() {
  GgufWriter w;
  w.set("general.architecture", GgufValue::string("llama"));
  w.set("llama.embedding_length", GgufValue::scalar<uint32_t>(64));
  w.set("llama.block_count", GgufValue::scalar<uint32_t>(1));
  w.set("llama.feed_forward_length", GgufValue::scalar<uint32_t>(128));
  w.set("llama.attention.head_count", GgufValue::scalar<uint32_t>(4));
  w.set("llama.attention.layer_norm_rms_epsilon", GgufValue::scalar<float>(1e-5f));
  w.set("tokenizer.ggml.tokens", GgufValue::string_array({"<s>", "a", "bc"}));
  w.set("tokenizer.ggml.scores", GgufValue::array<float>({0.0f, -1.0f, -2.0f}));
  w.set("flag", GgufValue::scalar<bool>(true));
  std::vector<float> f(8, 0.5f);
  w.add_tensor("token_embd.weight", DType::kF32, {2, 4}, std::as_bytes(std::span(f)));
  std::vector<float> q(64);
  for (int i = 0; i < 64; ++i) q[i] = static_cast<float>(i) - 30.0f;
  w.add_tensor("blk.0.attn_q.weight", DType::kQ8_0, {2, 32}, quantize(DType::kQ8_0, q.data(), 64));
  w.add_tensor("blk.0.attn_k.weight", DType::kQ4_0, {2, 32}, quantize(DType::kQ4_0, q.data(), 64));
  return w.serialize();
}

using Exercise = bool (*)(const uint8_t*, size_t);

// Runs one input; fails the test on anything but success or flagstone::Error.
void run_one(Exercise exercise, const std::vector<std::byte>& input, const std::string& label) {
  try {
    exercise(reinterpret_cast<const uint8_t*>(input.data()), input.size());
  } catch (const Error&) {
  } catch (const std::exception& e) {
    ADD_FAILURE() << label << ": non-flagstone exception " << e.what();
  }
}

void run_corpus(Exercise exercise, const std::vector<std::byte>& valid) {
  ASSERT_TRUE(exercise(reinterpret_cast<const uint8_t*>(valid.data()), valid.size()));
  for (size_t length = 0; length < valid.size(); ++length) {
    std::vector<std::byte> cut(valid.begin(), valid.begin() + static_cast<ptrdiff_t>(length));
    run_one(exercise, cut, "truncated to " + std::to_string(length));
  }
  for (size_t offset = 0; offset < valid.size(); ++offset) {
    for (uint8_t mask : {0x01, 0x10, 0x80, 0xff}) {
      std::vector<std::byte> flipped = valid;
      flipped[offset] ^= std::byte{mask};
      run_one(exercise, flipped, "byte " + std::to_string(offset) + " ^ " + std::to_string(mask));
    }
  }
  std::mt19937 gen(20261127);
  for (int round = 0; round < 2000; ++round) {
    std::vector<std::byte> noisy = valid;
    int changes = 1 + static_cast<int>(gen() % 8);
    for (int i = 0; i < changes; ++i) {
      noisy[gen() % noisy.size()] = static_cast<std::byte>(gen() & 0xff);
    }
    run_one(exercise, noisy, "random round " + std::to_string(round));
  }
}

TEST(CorruptFiles, Safetensors) {
  run_corpus(&fuzz::exercise_safetensors, small_safetensors());
}

TEST(CorruptFiles, Gguf) {
  run_corpus(&fuzz::exercise_gguf, small_gguf());
}

// Truncations must be reported as errors (not silently accepted) whenever the tensor data is cut.
TEST(CorruptFiles, TruncatedDataIsAnError) {
  std::vector<std::byte> st = small_safetensors();
  st.pop_back();
  EXPECT_FS_ERROR(SafetensorsFile::parse(MappedFile::from_bytes("t.safetensors", st)), kFormat,
                  "t.safetensors", "truncated");
  GgufFile full = GgufFile::parse(MappedFile::from_bytes("full.gguf", small_gguf()));
  const GgufTensorInfo& last = full.info("blk.0.attn_k.weight");
  std::vector<std::byte> gg = small_gguf();
  gg.resize(full.data_offset() + last.offset + last.nbytes - 1);
  EXPECT_FS_ERROR(GgufFile::parse(MappedFile::from_bytes("t.gguf", gg)), kFormat, "t.gguf",
                  "blk.0.attn_k.weight", "truncated");
}

}  // namespace
}  // namespace flagstone::engine::format
