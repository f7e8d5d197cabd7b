// The cuDNN vendor attention at prefill sizes the parity cases do not reach (hundreds of tokens,
// GQA, head dims 64/128/256, f16 and bf16, causal and not, a strided K/V cache view) against the
// float64 reference. Skips without a CUDA device or without cuDNN 9 on the loader's path; where
// cuDNN loads, a refusal of the main prefill shape fails, since dispatch would then silently run
// the slower native kernel.
#include <gtest/gtest.h>

#include <cstdio>

#include "ops/ops_test_util.h"

namespace flagstone::ops::testing {
namespace {

const Implementation* cudnn_impl() {
  for (const Implementation* impl :
       Registry::global().implementations("scaled_dot_product_attention", "cuda"))
    if (impl->provider == Provider::kVendor) return impl;
  return nullptr;
}

struct Case {
  int64_t b, hq, hk, lq, lk, dim;
  bool causal;
  DType dtype;
  bool must_serve;  // a refusal is a failure (where cuDNN loads)
  const char* label;
};

TEST(CudnnAttention, PrefillMatchesReference) {
  auto devices = runtime::devices_of("cuda");
  if (devices.empty()) GTEST_SKIP() << "no CUDA device";
  const Implementation* impl = cudnn_impl();
  if (!impl) GTEST_SKIP() << "built without cuDNN headers";
  Rng rng(test_seed());
  const Device& dev = devices[0];
  for (Case c : {Case{1, 8, 2, 384, 384, 128, true, DType::kBF16, true, "causal GQA 8/2 d128 bf16"},
                 Case{2, 4, 4, 256, 256, 64, false, DType::kF16, true, "non-causal d64 f16"},
                 Case{1, 4, 1, 200, 200, 128, true, DType::kF16, false, "MQA causal 200 f16"},
                 Case{1, 2, 2, 128, 320, 128, false, DType::kBF16, false, "128 queries over 320"},
                 Case{1, 2, 2, 192, 192, 256, true, DType::kBF16, false, "causal d256 bf16"}}) {
    SCOPED_TRACE(c.label);
    Tensor q = random_tensor(rng, {c.b, c.hq, c.lq, c.dim}, c.dtype, dev, -1, 1);
    Tensor k = random_tensor(rng, {c.b, c.hk, c.lk, c.dim}, c.dtype, dev, -1, 1);
    Tensor v = random_tensor(rng, {c.b, c.hk, c.lk, c.dim}, c.dtype, dev, -1, 1);
    Attrs attrs{{"causal", c.causal}};
    std::vector<Tensor> out;
    try {
      call_implementation(*impl, {q, k, v}, attrs, out);
    } catch (const Error& e) {
      std::string why = e.what();
      std::printf("cudnn attention %s: refused: %s\n", c.label, why.c_str());
      if (why.find("not installed") != std::string::npos) GTEST_SKIP() << why;
      EXPECT_FALSE(c.must_serve) << why;
      continue;
    }
    std::vector<Tensor> want = call_reference("scaled_dot_product_attention", {q, k, v}, attrs);
    std::string diff = compare(out[0], want[0], tolerance(c.dtype, c.lk * c.dim));
    EXPECT_TRUE(diff.empty()) << c.label << ": " << diff;
    if (diff.empty()) std::printf("cudnn attention %s: matches the reference\n", c.label);
  }
}

// K and V as views into a longer cache ([b, h, capacity, d] narrowed on the sequence), the layout
// of a KV cache during chunked prefill: cuDNN reads them through their strides.
TEST(CudnnAttention, StridedCacheViews) {
  auto devices = runtime::devices_of("cuda");
  if (devices.empty()) GTEST_SKIP() << "no CUDA device";
  const Implementation* impl = cudnn_impl();
  if (!impl) GTEST_SKIP() << "built without cuDNN headers";
  Rng rng(test_seed() + 1);
  const Device& dev = devices[0];
  Tensor kc = random_tensor(rng, {1, 2, 512, 128}, DType::kBF16, dev, -1, 1);
  Tensor vc = random_tensor(rng, {1, 2, 512, 128}, DType::kBF16, dev, -1, 1);
  Tensor q = random_tensor(rng, {1, 4, 160, 128}, DType::kBF16, dev, -1, 1);
  Tensor k = kc.narrow(2, 0, 160), v = vc.narrow(2, 0, 160);
  Attrs attrs{{"causal", true}};
  std::vector<Tensor> out;
  try {
    call_implementation(*impl, {q, k, v}, attrs, out);
  } catch (const Error& e) {
    std::string why = e.what();
    if (why.find("not installed") != std::string::npos) GTEST_SKIP() << why;
    FAIL() << why;
  }
  std::vector<Tensor> want = call_reference("scaled_dot_product_attention", {q, k, v}, attrs);
  std::string diff = compare(out[0], want[0], tolerance(DType::kBF16, 160 * 128));
  EXPECT_TRUE(diff.empty()) << diff;
}

}  // namespace
}  // namespace flagstone::ops::testing
