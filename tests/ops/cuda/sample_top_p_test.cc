// The native cuda sampler's top-p without top-k (an edge key searched on float masses and
// settled in double) against the reference's sort-based filter: vocabularies of 32000 with runs
// of tied logits, several top_p values, with and without min_p, same seeded stream. Tokens must
// match exactly. Skips without a CUDA device.
#include <gtest/gtest.h>

#include "ops/ops_test_util.h"

namespace flagstone::ops::testing {
namespace {

TEST(CudaSampleTopP, MatchesReferenceTokens) {
  auto devices = runtime::devices_of("cuda");
  if (devices.empty()) GTEST_SKIP() << "no CUDA device";
  const Implementation* impl = nullptr;
  for (const Implementation* i : Registry::global().implementations("sample", "cuda"))
    if (i->provider == Provider::kNative) impl = i;
  ASSERT_NE(impl, nullptr);
  Rng rng(test_seed());
  const Device& dev = devices[0];
  const int64_t rows = 8, vocab = 32000;
  std::vector<double> logits(static_cast<size_t>(rows * vocab));
  for (auto& x : logits) x = rng.uniform(-6, 6);
  // Ties: blocks of equal logits, some among the most likely tokens.
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < 40; ++j) logits[r * vocab + (j * 797 + r) % vocab] = 5.5;
  for (DType dtype : {DType::kF32, DType::kBF16}) {
    Tensor x = make_tensor(logits, {rows, vocab}, dtype, dev);
    for (double top_p : {0.05, 0.5, 0.9, 0.999}) {
      for (double min_p : {0.0, 0.2}) {
        SCOPED_TRACE(std::string(dtype_name(dtype)) + " top_p " + std::to_string(top_p) +
                     " min_p " + std::to_string(min_p));
        Attrs attrs{{"temperature", 0.9}, {"top_p", top_p}, {"min_p", min_p}, {"seed", 1234}};
        std::vector<Tensor> out;
        call_implementation(*impl, {x}, attrs, out);
        auto want = call_reference("sample", {x}, attrs);
        EXPECT_EQ(out[0].to(Device()).to_double_vector(), want[0].to_double_vector());
      }
    }
  }
}

}  // namespace
}  // namespace flagstone::ops::testing
