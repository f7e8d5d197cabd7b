// The streamed one-row GEMV (bulk copies into a shared-memory ring, sm_90): every dtype, rows that
// split unevenly over the grid, fewer rows than SMs, rings of 8 slots (many laps) to 192 KiB, two
// blocks per SM, bias or none; two products in a row, the second launched under PDL while the
// first still writes its input; and what it refuses. Checked against the float64 reference;
// skips without a CUDA device of compute capability 9.0.
#include <gtest/gtest.h>

#include <string>

#include "cuda/gemv.h"
#include "flagstone/runtime/backend.h"
#include "ops/ops_test_util.h"

namespace flagstone::ops::testing {
namespace {

void* address(const Tensor& t) {
  return static_cast<char*>(t.buffer().handle()) + t.byte_offset();
}

TEST(CudaStreamedGemv, MatchesReference) {
  auto devices = runtime::devices_of("cuda");
  if (devices.empty()) GTEST_SKIP() << "no CUDA device";
  const Device& dev = devices[0];
  Rng rng(test_seed() + 7);
  struct Case {
    int64_t n, k;
    int ring_kib, blocks_per_sm;
    bool bias;
    int chunk_kib = 0;
    bool keep_in_l2 = false;  // the weight streamed with L2 evict_last
  };
  // k: rows of one 2 KiB chunk (1024 bf16), of one 4 KiB chunk, of several, of 2 KiB chunks only
  // (3072); n: fewer rows than SMs, rows that split unevenly, a decode-sized down product; rings
  // from the 8-slot minimum (1 KiB asked; 4096 x 8192 then runs about 8 laps of it) to 192 KiB;
  // one weight streamed with the L2 policy that keeps it.
  const Case cases[] = {
      {7, 1024, 0, 0, true},      {300, 2048, 0, 0, false},      {1001, 4096, 32, 1, true},
      {133, 8192, 0, 2, false},   {2048, 8192, 192, 1, true},    {517, 3072, 48, 2, true},
      {300, 2048, 1, 1, true},    {129, 8192, 64, 1, false, 16}, {300, 4096, 48, 2, true, 8},
      {65, 2048, 0, 1, true, 16}, {4096, 8192, 1, 1, true},      {300, 2048, 0, 1, true, 0, true}};
  for (DType d : {DType::kBF16, DType::kF16, DType::kF32})
    for (const Case& c : cases) {
      const int64_t k = d == DType::kF32 ? c.k / 2 : c.k;
      SCOPED_TRACE(std::string(dtype_name(d)) + " n=" + std::to_string(c.n) +
                   " k=" + std::to_string(k) + " ring " + std::to_string(c.ring_kib) +
                   " KiB, blocks/SM " + std::to_string(c.blocks_per_sm) + ", chunk " +
                   std::to_string(c.chunk_kib) + " KiB" + (c.keep_in_l2 ? ", kept in L2" : ""));
      Tensor x = random_tensor(rng, {1, k}, d, dev, -1, 1);
      Tensor w = random_tensor(rng, {c.n, k}, d, dev, -1, 1);
      Tensor b = random_tensor(rng, {c.n}, d, dev, -1, 1);
      std::vector<Tensor> in{x, w};
      if (c.bias) in.push_back(b);
      auto want = call_reference("linear", in, {});
      Tensor out = Tensor::empty({1, c.n}, d, dev);
      poison(out);
      // x is written by kernels just before the product (the chained test below is the one
      // whose predecessor lets it start early).
      Tensor xs = Tensor::empty({1, k}, d, dev);
      poison(xs);
      xs.copy_(x);
      cuda::FusedGemvArgs a;
      a.out = address(out), a.x = address(xs), a.w = address(w);
      a.bias = c.bias ? address(b) : nullptr;
      a.m = 1, a.n = c.n, a.k = k, a.ldx = k, a.ldw = k, a.ldo = c.n;
      a.keep_in_l2 = c.keep_in_l2;
      const std::string refused = cuda::streamed_gemv_refusal(d, a);
      if (refused.find("compute capability") != std::string::npos) GTEST_SKIP() << refused;
      ASSERT_EQ(refused, "");
      auto stream =
          static_cast<cudaStream_t>(runtime::Stream::default_stream(dev).impl().native_handle());
      ASSERT_EQ(
          cuda::launch_streamed_gemv(d, a, stream, {c.ring_kib, c.blocks_per_sm, c.chunk_kib}),
          cudaSuccess);
      std::string diff = compare(out, want[0], tolerance(d, k));
      EXPECT_TRUE(diff.empty()) << diff;
    }
}

// y1 = W1 x, then y2 = W2 y1: the first product lets the second start at once (PDL), and the
// second's weight copies do, but it must read y1 only after the first has written all of it (y1
// starts poisoned). y2 is checked against the reference applied to the y1 the device produced.
TEST(CudaStreamedGemv, ChainedProductsWaitForTheirInput) {
  auto devices = runtime::devices_of("cuda");
  if (devices.empty()) GTEST_SKIP() << "no CUDA device";
  const Device& dev = devices[0];
  Rng rng(test_seed() + 9);
  const int64_t n = 4096, k = 4096;
  const DType d = DType::kBF16;
  Tensor x = random_tensor(rng, {1, k}, d, dev, -1, 1);
  Tensor w1 = random_tensor(rng, {n, k}, d, dev, -1, 1);
  Tensor w2 = random_tensor(rng, {n, n}, d, dev, -1, 1);
  Tensor y1 = Tensor::empty({1, n}, d, dev), y2 = Tensor::empty({1, n}, d, dev);
  cuda::FusedGemvArgs a;
  a.m = 1, a.n = n, a.k = k, a.ldx = k, a.ldw = k, a.ldo = n;
  a.out = address(y1), a.x = address(x), a.w = address(w1);
  const std::string refused = cuda::streamed_gemv_refusal(d, a);
  if (refused.find("compute capability") != std::string::npos) GTEST_SKIP() << refused;
  ASSERT_EQ(refused, "");
  auto stream =
      static_cast<cudaStream_t>(runtime::Stream::default_stream(dev).impl().native_handle());
  for (int round = 0; round < 3; ++round) {
    poison(y1);
    poison(y2);
    a.out = address(y1), a.x = address(x), a.w = address(w1);
    ASSERT_EQ(cuda::launch_streamed_gemv(d, a, stream), cudaSuccess);
    a.out = address(y2), a.x = address(y1), a.w = address(w2);
    ASSERT_EQ(cuda::launch_streamed_gemv(d, a, stream), cudaSuccess);
    std::string diff1 = compare(y1, call_reference("linear", {x, w1}, {})[0], tolerance(d, k));
    EXPECT_TRUE(diff1.empty()) << diff1;
    std::string diff2 = compare(y2, call_reference("linear", {y1, w2}, {})[0], tolerance(d, n));
    EXPECT_TRUE(diff2.empty()) << "round " << round << ": " << diff2;
  }
}

TEST(CudaStreamedGemv, RefusesWhatItCannotServe) {
  auto devices = runtime::devices_of("cuda");
  if (devices.empty()) GTEST_SKIP() << "no CUDA device";
  cuda::FusedGemvArgs a;
  alignas(16) int64_t storage[8] = {};
  a.x = a.w = a.out = storage;
  a.m = 1, a.n = 4, a.k = 1024, a.ldx = 1024, a.ldw = 1024, a.ldo = 4;
  const std::string served = cuda::streamed_gemv_refusal(DType::kBF16, a);
  if (served.find("compute capability") != std::string::npos) GTEST_SKIP() << served;
  EXPECT_EQ(served, "");
  a.m = 2;
  EXPECT_EQ(std::string(cuda::streamed_gemv_refusal(DType::kBF16, a)), "not one activation row");
  a.m = 1, a.k = 1000, a.ldx = 1000, a.ldw = 1000;
  EXPECT_NE(std::string(cuda::streamed_gemv_refusal(DType::kBF16, a)).find("2 KiB"),
            std::string::npos);
  a.k = 1024, a.ldw = 2048;
  EXPECT_NE(std::string(cuda::streamed_gemv_refusal(DType::kBF16, a)).find("contiguous"),
            std::string::npos);
  a.ldw = 1024, a.x = reinterpret_cast<char*>(storage) + 2;
  EXPECT_NE(std::string(cuda::streamed_gemv_refusal(DType::kBF16, a)).find("aligned"),
            std::string::npos);
  a.x = storage, a.k = 1 << 22, a.ldx = a.k, a.ldw = a.k;
  EXPECT_NE(std::string(cuda::streamed_gemv_refusal(DType::kBF16, a)).find("shared memory"),
            std::string::npos);
  EXPECT_NE(std::string(cuda::streamed_gemv_refusal(DType::kI32, a)), "");
}

}  // namespace
}  // namespace flagstone::ops::testing
