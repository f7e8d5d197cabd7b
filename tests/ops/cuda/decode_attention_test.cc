// The native cuda decode attention (GQA-grouped split kernel) at decode sizes the parity cases do
// not reach: one query per head over thousands of cached keys, groups of 1 to 8 query heads per
// kv head, head dims 64 and 128, f16 and bf16, a strided cache view, and paged caches whose
// sequences are shorter than the block table's capacity (down to one key in a 4096-key cache, as
// a decode step starts), calls repeated (the split tickets reset), and a recorded call replayed
// over new lengths; the split plan's edges (1, 63, 640, 4097 keys; groups of 1, 4, 8; up to 128
// splits). Checked against the float64 reference; skips without a CUDA device.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include "ops/ops_test_util.h"

namespace flagstone::ops::testing {
namespace {

const Implementation* native_impl(const char* op) {
  for (const Implementation* impl : Registry::global().implementations(op, "cuda"))
    if (impl->provider == Provider::kNative) return impl;
  return nullptr;
}

TEST(CudaDecodeAttention, GroupsAndLengthsMatchReference) {
  auto devices = runtime::devices_of("cuda");
  if (devices.empty()) GTEST_SKIP() << "no CUDA device";
  const Implementation* impl = native_impl("scaled_dot_product_attention");
  ASSERT_NE(impl, nullptr);
  Rng rng(test_seed());
  const Device& dev = devices[0];
  struct Case {
    int64_t b, hq, hk, keys, dim;
    DType dtype;
  };
  for (Case c : {Case{1, 32, 8, 4096, 128, DType::kBF16}, Case{2, 8, 8, 777, 64, DType::kF16},
                 Case{1, 16, 2, 3000, 128, DType::kF16}, Case{3, 4, 2, 65, 64, DType::kBF16}}) {
    SCOPED_TRACE(std::to_string(c.hq) + "/" + std::to_string(c.hk) + " heads, " +
                 std::to_string(c.keys) + " keys, d" + std::to_string(c.dim));
    Tensor q = random_tensor(rng, {c.b, c.hq, 1, c.dim}, c.dtype, dev, -1, 1);
    // Keys and values as views of a larger cache, as a decode step reads them.
    Tensor kc = random_tensor(rng, {c.b, c.hk, c.keys + 40, c.dim}, c.dtype, dev, -1, 1);
    Tensor vc = random_tensor(rng, {c.b, c.hk, c.keys + 40, c.dim}, c.dtype, dev, -1, 1);
    Tensor k = kc.narrow(2, 0, c.keys), v = vc.narrow(2, 0, c.keys);
    std::vector<Tensor> out;
    call_implementation(*impl, {q, k, v}, {}, out);
    auto want = call_reference("scaled_dot_product_attention", {q, k, v}, {});
    std::string diff = compare(out[0], want[0], tolerance(c.dtype, c.keys * c.dim));
    EXPECT_TRUE(diff.empty()) << diff;
  }
}

TEST(CudaDecodeAttention, PagedShorterThanCapacity) {
  auto devices = runtime::devices_of("cuda");
  if (devices.empty()) GTEST_SKIP() << "no CUDA device";
  const Implementation* impl = native_impl("paged_attention");
  ASSERT_NE(impl, nullptr);
  Rng rng(test_seed() + 1);
  const Device& dev = devices[0];
  const int64_t blocks = 80, block_size = 16, hk = 2, hq = 8, dim = 128, seqs = 3, max_blocks = 40;
  Tensor kc = random_tensor(rng, {blocks, block_size, hk, dim}, DType::kBF16, dev, -1, 1);
  Tensor vc = random_tensor(rng, {blocks, block_size, hk, dim}, DType::kBF16, dev, -1, 1);
  Tensor q = random_tensor(rng, {seqs, hq, dim}, DType::kBF16, dev, -1, 1);
  // Sequences of 1, 300 and 640 tokens (the last fills its 40 blocks), blocks scattered.
  std::vector<double> table(static_cast<size_t>(seqs * max_blocks));
  for (size_t i = 0; i < table.size(); ++i) table[i] = static_cast<double>((i * 37 + 11) % blocks);
  Tensor bt = make_tensor(table, {seqs, max_blocks}, DType::kI32, dev);
  Tensor lens = make_tensor({1, 300, 640}, {seqs}, DType::kI64, dev);
  std::vector<Tensor> out;
  call_implementation(*impl, {q, kc, vc, bt, lens}, {}, out);
  auto want = call_reference("paged_attention", {q, kc, vc, bt, lens}, {});
  std::string diff = compare(out[0], want[0], tolerance(DType::kBF16, 640 * dim));
  EXPECT_TRUE(diff.empty()) << diff;
}

// The engine's layout: each sequence one block of the whole capacity ([batch, capacity, hk, d]),
// lengths from one key up. Every case runs twice: the second call must not see tickets the first
// left behind.
TEST(CudaDecodeAttention, PagedShortLengthsInLargeCache) {
  auto devices = runtime::devices_of("cuda");
  if (devices.empty()) GTEST_SKIP() << "no CUDA device";
  const Implementation* impl = native_impl("paged_attention");
  ASSERT_NE(impl, nullptr);
  Rng rng(test_seed() + 2);
  const Device& dev = devices[0];
  const int64_t capacity = 4096, hq = 32, hk = 8;
  for (int64_t dim : {64, 128}) {
    Tensor kc = random_tensor(rng, {2, capacity, hk, dim}, DType::kBF16, dev, -1, 1);
    Tensor vc = random_tensor(rng, {2, capacity, hk, dim}, DType::kBF16, dev, -1, 1);
    Tensor q = random_tensor(rng, {2, hq, dim}, DType::kBF16, dev, -1, 1);
    Tensor bt = make_tensor({0, 1}, {2, 1}, DType::kI64, dev);
    for (int64_t n : {1, 15, 16, 17, 65, 129, 640, 4095, 4096}) {
      SCOPED_TRACE(::testing::Message() << "d" << dim << ", " << n << " keys");
      Tensor lens =
          make_tensor({static_cast<double>(n), static_cast<double>((n * 7) % capacity + 1)}, {2},
                      DType::kI64, dev);
      auto want = call_reference("paged_attention", {q, kc, vc, bt, lens}, {});
      for (int run = 0; run < 2; ++run) {
        std::vector<Tensor> out;
        call_implementation(*impl, {q, kc, vc, bt, lens}, {}, out);
        std::string diff = compare(out[0], want[0], tolerance(DType::kBF16, n * dim));
        EXPECT_TRUE(diff.empty()) << "call " << run << ": " << diff;
      }
    }
  }
}

// The split plan at its edges: one key, a key short of a pass, the engine's tg lengths and a key
// past a power of two; groups of 1, 4 and 8 query heads; one kv head (up to 128 splits, merged
// in several chunks) and eight (the Llama shapes, up to 640 keys). Batch 2 with the second
// sequence shorter, so two groups of tickets run side by side.
TEST(CudaDecodeAttention, SplitPlanEdges) {
  auto devices = runtime::devices_of("cuda");
  if (devices.empty()) GTEST_SKIP() << "no CUDA device";
  const Implementation* impl = native_impl("paged_attention");
  ASSERT_NE(impl, nullptr);
  Rng rng(test_seed() + 4);
  const Device& dev = devices[0];
  for (int64_t dim : {64, 128}) {
    for (int64_t hk : {1, 8}) {
      const int64_t capacity = hk == 1 ? 4160 : 704;
      Tensor kc = random_tensor(rng, {2, capacity, hk, dim}, DType::kBF16, dev, -2, 2);
      Tensor vc = random_tensor(rng, {2, capacity, hk, dim}, DType::kBF16, dev, -1, 1);
      Tensor bt = make_tensor({1, 0}, {2, 1}, DType::kI32, dev);
      for (int64_t group : {1, 4, 8}) {
        Tensor q = random_tensor(rng, {2, hk * group, dim}, DType::kBF16, dev, -2, 2);
        for (int64_t n : {1, 63, 640, 4097}) {
          if (n > capacity) continue;
          SCOPED_TRACE(::testing::Message() << "d" << dim << ", " << hk << " kv heads, group "
                                            << group << ", " << n << " keys");
          Tensor lens = make_tensor({static_cast<double>(n), static_cast<double>(n / 3 + 1)}, {2},
                                    DType::kI32, dev);
          auto want = call_reference("paged_attention", {q, kc, vc, bt, lens}, {});
          std::vector<Tensor> out;
          call_implementation(*impl, {q, kc, vc, bt, lens}, {}, out);
          std::string diff = compare(out[0], want[0], tolerance(DType::kBF16, n * dim));
          EXPECT_TRUE(diff.empty()) << diff;
        }
      }
    }
  }
}

// Lengths live in device memory, so one recorded call serves every decode step: capture once,
// then replay after writing new lengths (short and long) and compare each with the reference.
TEST(CudaDecodeAttention, RecordedCallFollowsDeviceLengths) {
  auto devices = runtime::devices_of("cuda");
  if (devices.empty()) GTEST_SKIP() << "no CUDA device";
  Rng rng(test_seed() + 3);
  const Device& dev = devices[0];
  const int64_t capacity = 2048, hq = 16, hk = 4, dim = 128;
  Tensor kc = random_tensor(rng, {1, capacity, hk, dim}, DType::kF16, dev, -1, 1);
  Tensor vc = random_tensor(rng, {1, capacity, hk, dim}, DType::kF16, dev, -1, 1);
  Tensor q = random_tensor(rng, {1, hq, dim}, DType::kF16, dev, -1, 1);
  Tensor bt = make_tensor({0}, {1, 1}, DType::kI32, dev);
  Tensor lens = make_tensor({2048}, {1}, DType::kI32, dev);
  std::vector<Tensor> out{Tensor::empty({1, hq, dim}, DType::kF16, dev)};
  call_out("paged_attention", {q, kc, vc, bt, lens}, {}, out);  // warm-up: scratch made here
  dev.synchronize();

  auto stream = static_cast<cudaStream_t>(dev.impl().default_stream().native_handle());
  ASSERT_EQ(cudaSetDevice(dev.index()), cudaSuccess);
  ASSERT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal), cudaSuccess);
  bool captured_ok = true;
  try {
    call_out("paged_attention", {q, kc, vc, bt, lens}, {}, out);
  } catch (const Error& e) {
    captured_ok = false;
    ADD_FAILURE() << "paged_attention failed during capture: " << e.what();
  }
  cudaGraph_t graph = nullptr;
  cudaError_t end = cudaStreamEndCapture(stream, &graph);
  ASSERT_TRUE(captured_ok);
  ASSERT_EQ(end, cudaSuccess) << cudaGetErrorString(end);
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  for (int64_t n : {1, 33, 700, 2048, 5, 1500}) {
    SCOPED_TRACE(::testing::Message() << n << " keys");
    lens.copy_(make_tensor({static_cast<double>(n)}, {1}, DType::kI32, dev));
    poison(out[0]);
    dev.synchronize();
    ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    auto want = call_reference("paged_attention", {q, kc, vc, bt, lens}, {});
    std::string diff = compare(out[0], want[0], tolerance(DType::kF16, n * dim));
    EXPECT_TRUE(diff.empty()) << diff;
  }
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
}

}  // namespace
}  // namespace flagstone::ops::testing
