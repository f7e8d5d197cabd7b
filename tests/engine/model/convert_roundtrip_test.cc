// Conversion round trips: a model folder converted to GGUF in every supported type runs with no
// folder at all (embedded tokenizer and chat template), its logits match the float64 reference
// of the folder within the type's precision and the reference of the file's own weights within
// arithmetic error, and GGUF converted back to a folder loads to the same model.
#include <gtest/gtest.h>

#include <filesystem>

#include "engine/model/tiny_models.h"
#include "flagstone/engine/format/convert.h"
#include "flagstone/engine/format/gguf.h"
#include "flagstone/engine/format/quant.h"
#include "flagstone/engine/generate/generator.h"
#include "flagstone/engine/model/model.h"

namespace flagstone::engine {
namespace {

using testing::relative_error;
using testing::ScratchFolder;

std::vector<double> logits_of(Model& model, const std::vector<TokenId>& prompt) {
  KvCache cache = model.new_cache(1, 64);
  std::vector<int64_t> ids(prompt.begin(), prompt.end());
  auto n = static_cast<int64_t>(ids.size());
  return model.forward(Tensor::from_vector(ids, {1, n}), cache, true).to_double_vector();
}

std::unique_ptr<Model> reference_of(const std::string& path) {
  ModelOptions options;
  options.reference = true;
  return load_model(path, options);
}

struct TypeCase {
  DType type;
  // Against the folder's float64 reference: the weights' own rounding.
  double vs_folder;
};

class ConvertRoundTrip : public ::testing::TestWithParam<int64_t> {};

TEST_P(ConvertRoundTrip, GgufRunsAloneAndMatchesTheFolder) {
  const int64_t hidden = GetParam();
  ScratchFolder folder("convert_rt");
  testing::write_tiny_chat_model(folder.path(), 7, hidden);
  Tokenizer folder_tokenizer = load_model_tokenizer(folder.path());
  auto folder_reference = reference_of(folder.path());
  const std::string text = "Once upon a time, 42 cats sat on the mat.";
  const std::vector<TokenId> prompt = folder_tokenizer.encode(text);

  std::vector<TypeCase> cases = {{DType::kF32, 1e-5},  {DType::kF16, 1e-2}, {DType::kBF16, 5e-2},
                                 {DType::kQ8_0, 5e-2}, {DType::kQ4_0, 0.3}, {DType::kQ6_K, 5e-2},
                                 {DType::kQ4_K, 0.3}};
  for (const TypeCase& c : cases) {
    SCOPED_TRACE(dtype_name(c.type));
    // The GGUF file lives in a folder of its own: nothing from the model folder is at hand.
    ScratchFolder out("convert_rt_out");
    const std::string gguf = out.path() + "/m-" + std::string(dtype_name(c.type)) + ".gguf";
    testing::write_tiny_gguf_model(folder.path(), gguf, c.type);
    ASSERT_EQ(std::filesystem::directory_iterator(out.path())->path().filename(),
              std::filesystem::path(gguf).filename());

    Tokenizer tokenizer = load_model_tokenizer(gguf);
    EXPECT_EQ(tokenizer.encode(text), prompt);
    EXPECT_EQ(tokenizer.chat_template(), folder_tokenizer.chat_template());
    EXPECT_EQ(tokenizer.decode(prompt, true), folder_tokenizer.decode(prompt, true));

    auto model = load_model(gguf);
    std::vector<double> got = logits_of(*model, prompt);
    // The file's own weights in float64: what is left is the kernels' arithmetic (q8_0/q4_0
    // products may round activations to 8 bits, as ggml's do).
    auto file_reference = reference_of(gguf);
    EXPECT_LT(relative_error(got, logits_of(*file_reference, prompt)), 1e-2);
    EXPECT_LT(relative_error(got, logits_of(*folder_reference, prompt)), c.vs_folder);

    if (c.type == DType::kF32) {
      // Greedy generation token for token, through the tokenizers each side carries.
      auto folder_model = load_model(folder.path());
      Generator a(*folder_model, &folder_tokenizer, 64), b(*model, &tokenizer, 64);
      GenerationOptions options;
      options.max_new_tokens = 16;
      GenerationResult want = a.generate(prompt, options);
      GenerationResult have = b.generate(prompt, options);
      EXPECT_EQ(have.tokens, want.tokens);
      EXPECT_EQ(have.text, want.text);
    }
    if (c.type == DType::kQ4_K || c.type == DType::kQ6_K) {
      // Rows of whole super-blocks keep the K type; narrower ones fall back to q8_0, and the
      // tied head of a q4_k file is q6_k.
      format::GgufFile file = format::GgufFile::open(gguf);
      DType want = hidden % format::kBlockK == 0 ? c.type : DType::kQ8_0;
      EXPECT_EQ(file.info("blk.0.attn_q.weight").dtype, want);
      DType head = c.type == DType::kQ4_K && want == DType::kQ4_K ? DType::kQ6_K : want;
      const char* head_name =
          file.contains("output.weight") ? "output.weight" : "token_embd.weight";
      EXPECT_EQ(file.info(head_name).dtype, head);
    }
    if (c.type == DType::kQ4_K) {
      // Back to a folder: the dequantized weights make the same model as the file.
      const std::string back = out.path() + "/back";
      format::convert_gguf_to_hf(gguf, back);
      EXPECT_LT(relative_error(logits_of(*reference_of(back), prompt),
                               logits_of(*file_reference, prompt)),
                1e-6);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Widths, ConvertRoundTrip, ::testing::Values(64, 256),
                         [](const auto& info) { return "hidden" + std::to_string(info.param); });

}  // namespace
}  // namespace flagstone::engine
