// The streamed one-row GEMV (bulk copies into a shared-memory ring, sm_90): every dtype, rows that
// split unevenly over the grid, fewer rows than SMs, rings of 8 slots (many laps) to 192 KiB, two
// blocks per SM, bias or none; two products in a row, the second launched under PDL while the
// first still writes its input; the greedy pick as it ends; the embedding lookup in front; and
// what it refuses. Checked against
// the float64 reference; skips without a CUDA device of compute capability 9.0.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "cuda/gemv.h"
#include "flagstone/runtime/backend.h"
#include "ops/ops_test_util.h"

namespace flagstone::ops::testing {
namespace {

void* address(const Tensor& t) {
  return static_cast<char*>(t.buffer().handle()) + t.byte_offset();
}

cudaStream_t stream_of(const Device& dev) {
  return static_cast<cudaStream_t>(runtime::Stream::default_stream(dev).impl().native_handle());
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
      auto stream = stream_of(dev);
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
  auto stream = stream_of(dev);
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

// The greedy pick as the product ends (GemvPick): the index of the largest output the kernel
// wrote (NaN first, ties by the lower index), the step's counters advanced and the index in the
// host slot of the first counter; three rounds, so each launch must leave its ticket zero.
// Round 0: random rows; 1: the best row twice (a tie: the lower index); 2: a NaN row.
TEST(CudaStreamedGemv, GreedyPickAsItEnds) {
  auto devices = runtime::devices_of("cuda");
  if (devices.empty()) GTEST_SKIP() << "no CUDA device";
  const Device& dev = devices[0];
  Rng rng(test_seed() + 11);
  auto stream = stream_of(dev);
  runtime::PinnedHostBuffer host(dev, 4 * sizeof(int64_t));
  void* host_on_device = nullptr;
  ASSERT_EQ(cudaHostGetDevicePointer(&host_on_device, host.data(), 0), cudaSuccess);
  auto* slots = static_cast<int64_t*>(host.data());
  for (DType d : {DType::kBF16, DType::kF16, DType::kF32})
    for (int64_t n : {int64_t{7}, int64_t{300}, int64_t{20011}}) {
      const int64_t k = d == DType::kF32 ? 512 : 1024;  // rows of 2 KiB
      std::vector<double> xv(k), wv(n * k);
      for (double& v : xv) v = rng.uniform(-1, 1);
      for (double& v : wv) v = rng.uniform(-1, 1);
      Tensor x = make_tensor(xv, {1, k}, d, dev);
      Tensor out = Tensor::empty({1, n}, d, dev);
      Tensor picked = Tensor::empty({1}, DType::kI64, dev);
      Tensor counters = make_tensor({41, 42}, {2}, DType::kI64, dev);
      Tensor scratch = Tensor::empty({2 * 1024 + 1}, DType::kI64, dev);
      scratch.fill_bytes_(0);
      for (int round = 0; round < 3; ++round) {
        SCOPED_TRACE(std::string(dtype_name(d)) + " n=" + std::to_string(n) + " round " +
                     std::to_string(round));
        std::vector<double> rows = wv;
        const int64_t a_row = rng.integer(0, n - 1), b_row = rng.integer(0, n - 1);
        if (round == 1)  // x's signs: the largest possible output, in two rows
          for (int64_t i = 0; i < k; ++i)
            rows[a_row * k + i] = rows[b_row * k + i] = xv[i] > 0 ? 1.0 : -1.0;
        if (round == 2) rows[b_row * k + k / 2] = std::nan("");
        Tensor w = make_tensor(rows, {n, k}, d, dev);
        poison(out);
        cuda::FusedGemvArgs a;
        a.out = address(out), a.x = address(x), a.w = address(w);
        a.m = 1, a.n = n, a.k = k, a.ldx = k, a.ldw = k, a.ldo = n;
        a.pick.out = static_cast<int64_t*>(address(picked));
        a.pick.scratch = address(scratch);
        a.pick.scratch_blocks = 1024;
        a.pick.ticket = reinterpret_cast<unsigned*>(static_cast<int64_t*>(address(scratch)) + 2048);
        a.pick.advance = static_cast<int64_t*>(address(counters));
        a.pick.advance_count = 2;
        a.pick.host = static_cast<int64_t*>(host_on_device);
        a.pick.host_slots = 4;
        const std::string refused = cuda::streamed_gemv_refusal(d, a);
        if (refused.find("compute capability") != std::string::npos) GTEST_SKIP() << refused;
        ASSERT_EQ(refused, "");
        std::fill(slots, slots + 4, int64_t{-5});
        ASSERT_EQ(cuda::launch_streamed_gemv(d, a, stream), cudaSuccess);
        const std::vector<double> got = out.to_double_vector();  // waits for the kernel
        std::string diff = compare(out, call_reference("linear", {x, w}, {})[0], tolerance(d, k));
        EXPECT_TRUE(diff.empty()) << diff;
        int64_t want = 0;
        for (int64_t j = 1; j < n; ++j) {
          const bool jn = std::isnan(got[j]), wn = std::isnan(got[want]);
          if ((jn && !wn) || (!jn && !wn && got[j] > got[want])) want = j;
        }
        if (round == 1) {
          EXPECT_EQ(want, std::min(a_row, b_row));
        }
        if (round == 2) {
          EXPECT_TRUE(std::isnan(got[want]));
        }
        EXPECT_EQ(picked.to_vector<int64_t>()[0], want);
        const int64_t position = 41 + round;
        EXPECT_EQ(counters.to_vector<int64_t>(),
                  (std::vector<int64_t>{position + 1, position + 2}));
        EXPECT_EQ(slots[position % 4], want);
        EXPECT_EQ(slots[(position + 1) % 4], -5);
      }
      counters.copy_(make_tensor({41, 42}, {2}, DType::kI64, dev));
    }
}

// The embedding lookup in front (x_index): x is row ids[0] of a table; the products equal, bit
// for bit, those of the same launch given that row as x (checked against the reference above),
// with and without the norm prologue, and the first block leaves the raw row in x_out; an id
// out of range gives NaN in both.
TEST(CudaStreamedGemv, EmbeddingLookupInFront) {
  auto devices = runtime::devices_of("cuda");
  if (devices.empty()) GTEST_SKIP() << "no CUDA device";
  const Device& dev = devices[0];
  Rng rng(test_seed() + 13);
  auto stream = stream_of(dev);
  const int64_t rows = 9, n = 700;
  for (DType d : {DType::kBF16, DType::kF16, DType::kF32})
    for (auto prologue : {cuda::GemvPrologue::kRmsNorm, cuda::GemvPrologue::kNone})
      for (int64_t id : {int64_t{0}, int64_t{5}, rows - 1, rows, int64_t{-1}}) {
        const int64_t k = d == DType::kF32 ? 1024 : 2048;
        SCOPED_TRACE(std::string(dtype_name(d)) + " id " + std::to_string(id) +
                     (prologue == cuda::GemvPrologue::kRmsNorm ? " normed" : ""));
        Tensor table = random_tensor(rng, {rows, k}, d, dev, -2, 2);
        Tensor w = random_tensor(rng, {n, k}, d, dev, -1, 1);
        Tensor nw = random_tensor(rng, {k}, d, dev, 0.5, 1.5);
        Tensor ids = Tensor::from_vector(std::vector<int64_t>{id}, {1}, dev);
        Tensor out = Tensor::empty({1, n}, d, dev), kept = Tensor::empty({1, k}, d, dev);
        poison(out);
        poison(kept);
        cuda::FusedGemvArgs a;
        a.m = 1, a.n = n, a.k = k, a.ldx = k, a.ldw = k, a.ldo = n;
        a.w = address(w), a.out = address(out), a.x = address(table);
        a.prologue = prologue;
        a.norm_weight = address(nw);
        a.eps = 1e-5f;
        a.x_index = static_cast<const int64_t*>(address(ids));
        a.x_rows = rows;
        a.x_out = address(kept);
        const std::string refused = cuda::streamed_gemv_refusal(d, a);
        if (refused.find("compute capability") != std::string::npos) GTEST_SKIP() << refused;
        ASSERT_EQ(refused, "");
        ASSERT_EQ(cuda::launch_streamed_gemv(d, a, stream), cudaSuccess);
        const std::vector<double> got = out.to_double_vector(), row = kept.to_double_vector();
        if (id < 0 || id >= rows) {
          for (double v : got) ASSERT_TRUE(std::isnan(v));
          for (double v : row) ASSERT_TRUE(std::isnan(v));
          continue;
        }
        Tensor x = table.narrow(0, id, 1).contiguous();
        EXPECT_EQ(row, x.to_double_vector());
        Tensor plain = Tensor::empty({1, n}, d, dev);
        a.x_index = nullptr, a.x_out = nullptr, a.x = address(x), a.out = address(plain);
        ASSERT_EQ(cuda::launch_streamed_gemv(d, a, stream), cudaSuccess);
        EXPECT_EQ(got, plain.to_double_vector());
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
  // The greedy pick: scratch for every block, a ticket, no silu epilogue.
  a.k = 1024, a.ldx = 1024, a.ldw = 1024;
  a.pick.out = storage, a.pick.scratch = storage, a.pick.scratch_blocks = 1;
  a.pick.ticket = reinterpret_cast<unsigned*>(storage + 4);
  EXPECT_NE(std::string(cuda::streamed_gemv_refusal(DType::kBF16, a)).find("greedy pick"),
            std::string::npos);
  a.pick.scratch_blocks = 1024;
  EXPECT_EQ(std::string(cuda::streamed_gemv_refusal(DType::kBF16, a)), "");
  a.n = 8, a.ldo = 8, a.epilogue = cuda::GemvEpilogue::kSiluMul;
  EXPECT_NE(std::string(cuda::streamed_gemv_refusal(DType::kBF16, a)).find("greedy pick"),
            std::string::npos);
  // The embedding lookup: a table, an aligned x_out, no silu prologue.
  a.pick = {}, a.epilogue = cuda::GemvEpilogue::kNone;
  a.x_index = storage, a.x_rows = 0;
  EXPECT_NE(std::string(cuda::streamed_gemv_refusal(DType::kBF16, a)).find("embedding"),
            std::string::npos);
  a.x_rows = 2, a.x_out = reinterpret_cast<char*>(storage) + 4;
  EXPECT_NE(std::string(cuda::streamed_gemv_refusal(DType::kBF16, a)).find("embedding"),
            std::string::npos);
  a.x_out = storage;
  EXPECT_EQ(std::string(cuda::streamed_gemv_refusal(DType::kBF16, a)), "");
}

}  // namespace
}  // namespace flagstone::ops::testing
