// The native cuda GEMV of GGUF q8_0 / q4_0 weights (linear_quantized for decode) in each of its
// kernels (FLAGSTONE_QUANT_GEMV=vec | staged | warp): 1 to 8 rows, f32/f16/bf16 activations,
// inner dims that are and are not multiples of the 256-value unit, several units per warp, bias,
// misaligned activations (the fallback), against the float64 reference; skips without a CUDA
// device.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <tuple>

#include "flagstone/base/half.h"
#include "ops/ops_test_util.h"

namespace flagstone::ops::testing {
namespace {

const Implementation* native_quantized() {
  for (const Implementation* impl : Registry::global().implementations("linear_quantized", "cuda"))
    if (impl->provider == Provider::kNative) return impl;
  return nullptr;
}

// GGUF bytes with valid f16 scales in [0.005, 0.02) and random quants (all 256 byte values).
Tensor random_gguf(Rng& rng, DType q, int64_t n, int64_t k, const Device& dev) {
  size_t block = dtype_info(q).block_bytes;
  std::vector<uint8_t> bytes(static_cast<size_t>(n * k / 32) * block);
  for (size_t b = 0; b < bytes.size(); b += block) {
    uint16_t h = Half(static_cast<float>(rng.uniform(0.005, 0.02))).bits;
    std::memcpy(&bytes[b], &h, 2);
    for (size_t j = 2; j < block; ++j) bytes[b + j] = static_cast<uint8_t>(rng.integer(0, 255));
  }
  return Tensor::from_host(bytes.data(), bytes.size(), {n, k}, q, dev);
}

void expect_matches(const Implementation& impl, const std::vector<Tensor>& in, int64_t k) {
  const OpSchema& schema = Registry::global().schema(impl.op);
  std::vector<Tensor> out = allocate_outputs(schema, in, {}, in[0].device());
  poison(out[0]);
  call_implementation(impl, in, {}, out);
  auto want = call_reference(impl.op, in, {});
  std::string diff = compare(out[0], want[0], tolerance(in[0].dtype(), k));
  EXPECT_TRUE(diff.empty()) << diff;
}

class CudaQuantGemv : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override { setenv("FLAGSTONE_QUANT_GEMV", GetParam(), 1); }
  void TearDown() override { unsetenv("FLAGSTONE_QUANT_GEMV"); }
};

TEST_P(CudaQuantGemv, MatchesReferenceForEveryRowCountAndActivationType) {
  auto devices = runtime::devices_of("cuda");
  if (devices.empty()) GTEST_SKIP() << "no CUDA device";
  const Implementation* impl = native_quantized();
  ASSERT_NE(impl, nullptr);
  Rng rng(test_seed() + 11);
  const Device& dev = devices[0];
  // k = 256: one unit; 4096: 16 units (several per warp and step); 2304: 9, a partial step;
  // 96 and 2080: not a multiple of 256 (the warp kernel serves them). n = 1 to 41 features.
  const std::tuple<int64_t, int64_t, int64_t> shapes[] = {
      {1, 256, 9}, {1, 4096, 41}, {2, 2304, 17}, {4, 4096, 8},
      {5, 512, 3}, {8, 2304, 13}, {1, 96, 5},    {3, 2080, 7}};
  for (DType q : {DType::kQ8_0, DType::kQ4_0})
    for (DType act : {DType::kF32, DType::kF16, DType::kBF16})
      for (auto [m, k, n] : shapes) {
        SCOPED_TRACE(std::string(dtype_name(q)) + " x " + std::string(dtype_name(act)) + " m=" +
                     std::to_string(m) + " k=" + std::to_string(k) + " n=" + std::to_string(n));
        Tensor w = random_gguf(rng, q, n, k, dev);
        Tensor x = random_tensor(rng, {m, k}, act, dev, -1, 1);
        std::vector<Tensor> in{x, w};
        if (m % 2 == 1) in.push_back(random_tensor(rng, {n}, act, dev, -1, 1));
        expect_matches(*impl, in, k);
      }
}

// Activations one element into their buffer are not 16-byte aligned: the unit kernel must hand
// the call to the warp kernel rather than read misaligned vectors.
TEST_P(CudaQuantGemv, MisalignedActivationsFallBack) {
  auto devices = runtime::devices_of("cuda");
  if (devices.empty()) GTEST_SKIP() << "no CUDA device";
  const Implementation* impl = native_quantized();
  ASSERT_NE(impl, nullptr);
  Rng rng(test_seed() + 12);
  const Device& dev = devices[0];
  const int64_t k = 512, n = 6;
  for (DType q : {DType::kQ8_0, DType::kQ4_0}) {
    SCOPED_TRACE(std::string(dtype_name(q)));
    Tensor w = random_gguf(rng, q, n, k, dev);
    Tensor wide = random_tensor(rng, {1, k + 1}, DType::kBF16, dev, -1, 1);
    Tensor x = wide.slice(1, 1, k + 1).contiguous();  // an aligned copy, for the reference
    Tensor shifted = wide.reshape({k + 1}).slice(0, 1, k + 1).reshape({1, k});
    ASSERT_TRUE(shifted.is_contiguous());
    const OpSchema& schema = Registry::global().schema(impl->op);
    std::vector<Tensor> out = allocate_outputs(schema, {shifted, w}, {}, dev);
    poison(out[0]);
    call_implementation(*impl, {shifted, w}, {}, out);
    auto want = call_reference(impl->op, {x, w}, {});
    std::string diff = compare(out[0], want[0], tolerance(DType::kBF16, k));
    EXPECT_TRUE(diff.empty()) << diff;
  }
}

INSTANTIATE_TEST_SUITE_P(Kernels, CudaQuantGemv, ::testing::Values("vec", "staged", "warp"),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           return std::string(info.param);
                         });

}  // namespace
}  // namespace flagstone::ops::testing
