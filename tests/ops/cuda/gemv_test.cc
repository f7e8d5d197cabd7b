// The native cuda GEMV behind linear and mm for 1 to 8 activation rows: every row count, odd and
// long inner dims (the element path, the 16-byte path and its remainder), bias, f32/f16/bf16,
// every tuning variant, strided and misaligned operands, CUDA-graph replay, and the hand-over
// between it and cuBLAS under the dispatch policy. Checked against the float64 reference; skips
// without a CUDA device.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>

#include "cuda/gemv.h"
#include "flagstone/base/half.h"
#include "flagstone/runtime/graph.h"
#include "ops/ops_test_util.h"

namespace flagstone::ops::testing {
namespace {

const Implementation* impl_of(const char* op, Provider provider) {
  for (const Implementation* impl : Registry::global().implementations(op, "cuda"))
    if (impl->provider == provider) return impl;
  return nullptr;
}

std::vector<Device> cuda_devices() {
  return runtime::devices_of("cuda");
}

// Why `impl` refuses the call (empty when it serves it).
std::string refusal(const Implementation& impl, const std::vector<Tensor>& in) {
  const OpSchema& schema = Registry::global().schema(impl.op);
  std::vector<Tensor> out = allocate_outputs(schema, in, {}, in[0].device());
  KernelArgs probe{impl.op, in, out, {}, in[0].device()};
  return impl.supports ? impl.supports(probe) : std::string();
}

void expect_matches(const Implementation& impl, const std::vector<Tensor>& in, int64_t k) {
  const OpSchema& schema = Registry::global().schema(impl.op);
  std::vector<Tensor> out = allocate_outputs(schema, in, {}, in[0].device());
  poison(out[0]);
  call_implementation(impl, in, {}, out);
  auto want = call_reference(impl.op, in, {});
  std::string diff = compare(out[0], want[0], tolerance(in[0].dtype(), std::max<int64_t>(k, 1)));
  EXPECT_TRUE(diff.empty()) << diff;
}

TEST(CudaGemv, LinearEveryRowCountMatchesReference) {
  auto devices = cuda_devices();
  if (devices.empty()) GTEST_SKIP() << "no CUDA device";
  const Implementation* impl = impl_of("linear", Provider::kNative);
  ASSERT_NE(impl, nullptr);
  Rng rng(test_seed());
  const Device& dev = devices[0];
  // k = 13: the element path; 1000: 16-byte chunks for every dtype; 4104: a partial unrolled
  // step at the end; 2056 over 300 features: rows split over several warps.
  struct Shape2 {
    int64_t n, k;
  };
  for (DType d : {DType::kF32, DType::kF16, DType::kBF16})
    for (Shape2 s : {Shape2{65, 13}, Shape2{37, 1000}, Shape2{300, 4104}, Shape2{9, 2056}})
      for (int64_t m = 1; m <= 8; ++m) {
        SCOPED_TRACE(std::string(dtype_name(d)) + " m=" + std::to_string(m) +
                     " n=" + std::to_string(s.n) + " k=" + std::to_string(s.k));
        Tensor x = random_tensor(rng, {m, s.k}, d, dev, -1, 1);
        Tensor w = random_tensor(rng, {s.n, s.k}, d, dev, -1, 1);
        std::vector<Tensor> in{x, w};
        if (m % 2 == 1) in.push_back(random_tensor(rng, {s.n}, d, dev, -1, 1));
        EXPECT_EQ(refusal(*impl, in), "");
        expect_matches(*impl, in, s.k);
      }
}

TEST(CudaGemv, EveryTuningVariantMatchesReference) {
  auto devices = cuda_devices();
  if (devices.empty()) GTEST_SKIP() << "no CUDA device";
  Rng rng(test_seed() + 1);
  const Device& dev = devices[0];
  const int64_t n = 19, k = 2048 + 8;
  for (DType d : {DType::kBF16, DType::kF32})
    for (int64_t m : {1, 3, 8}) {
      Tensor x = random_tensor(rng, {m, k}, d, dev, -1, 1);
      Tensor w = random_tensor(rng, {n, k}, d, dev, -1, 1);
      Tensor b = random_tensor(rng, {n}, d, dev, -1, 1);
      auto want = call_reference("linear", {x, w, b}, {});
      for (int wpr : {1, 2, 4, 8})
        for (int unroll : {4, 8}) {
          SCOPED_TRACE(std::string(dtype_name(d)) + " m=" + std::to_string(m) +
                       " warps/row=" + std::to_string(wpr) + " unroll=" + std::to_string(unroll));
          Tensor out = Tensor::empty({m, n}, d, dev);
          poison(out);
          auto ptr = [](const Tensor& t) {
            return static_cast<char*>(t.buffer().handle()) + t.byte_offset();
          };
          cuda::GemvArgs a;
          a.out = ptr(out), a.x = ptr(x), a.w = ptr(w), a.bias = ptr(b);
          a.m = m, a.n = n, a.k = k, a.ldx = k, a.ldw = k, a.ldo = n;
          a.warps_per_row = wpr, a.unroll = unroll;
          auto stream = static_cast<cudaStream_t>(
              runtime::Stream::default_stream(dev).impl().native_handle());
          ASSERT_EQ(cuda::launch_gemv(d, a, stream), cudaSuccess);
          std::string diff = compare(out, want[0], tolerance(d, k));
          EXPECT_TRUE(diff.empty()) << diff;
        }
    }
}

TEST(CudaGemv, StridedAndMisalignedOperands) {
  auto devices = cuda_devices();
  if (devices.empty()) GTEST_SKIP() << "no CUDA device";
  const Implementation* impl = impl_of("linear", Provider::kNative);
  ASSERT_NE(impl, nullptr);
  Rng rng(test_seed() + 2);
  const Device& dev = devices[0];
  const int64_t k = 512, n = 70;
  // Rows that start 2 bytes past a 16-byte boundary take the element path.
  Tensor big = random_tensor(rng, {3 * k + 1}, DType::kBF16, dev, -1, 1);
  Tensor x = big.narrow(0, 1, 3 * k).view({3, k});
  Tensor w = random_tensor(rng, {n, k}, DType::kBF16, dev, -1, 1);
  expect_matches(*impl, {x, w}, k);
  // A strided 3-d input through dispatch (which hands the native kernel a dense copy).
  Tensor xs = random_tensor(rng, {2, 3, k}, DType::kF16, dev, -1, 1, true);
  Tensor wh = random_tensor(rng, {n, k}, DType::kF16, dev, -1, 1);
  auto got = call("linear", {xs, wh});
  auto want = call_reference("linear", {xs, wh});
  std::string diff = compare(got[0], want[0], tolerance(DType::kF16, k));
  EXPECT_TRUE(diff.empty()) << diff;
}

TEST(CudaGemv, MmWithTransposedWeight) {
  auto devices = cuda_devices();
  if (devices.empty()) GTEST_SKIP() << "no CUDA device";
  const Implementation* impl = impl_of("mm", Provider::kNative);
  ASSERT_NE(impl, nullptr);
  Rng rng(test_seed() + 3);
  const Device& dev = devices[0];
  for (int64_t m : {1, 5, 8}) {
    Tensor a = random_tensor(rng, {m, 776}, DType::kBF16, dev, -1, 1);
    Tensor b = random_tensor(rng, {91, 776}, DType::kBF16, dev, -1, 1).t();
    EXPECT_EQ(refusal(*impl, {a, b}), "");
    expect_matches(*impl, {a, b}, 776);
  }
  // A row-major b reads along n, not k: refused with the reason, left to cuBLAS.
  Tensor a = random_tensor(rng, {2, 64}, DType::kF32, dev, -1, 1);
  Tensor b = random_tensor(rng, {64, 33}, DType::kF32, dev, -1, 1);
  EXPECT_NE(refusal(*impl, {a, b}).find("not a transposed"), std::string::npos);
  std::vector<Tensor> out;
  try {
    call_implementation(*impl, {a, b}, {}, out);
    ADD_FAILURE() << "expected a refusal";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kUnsupported);
    EXPECT_NE(e.message().find("not a transposed"), std::string::npos) << e.message();
  }
}

// One row of a narrow weight goes to the native GEMV, everything else to cuBLAS; a policy without
// the native provider for the op (or strict mode) keeps cuBLAS on every call.
TEST(CudaGemv, HandOverWithCublasFollowsPolicy) {
  auto devices = cuda_devices();
  if (devices.empty()) GTEST_SKIP() << "no CUDA device";
  const Implementation* native = impl_of("linear", Provider::kNative);
  const Implementation* vendor = impl_of("linear", Provider::kVendor);
  ASSERT_NE(native, nullptr);
  ASSERT_NE(vendor, nullptr);
  Rng rng(test_seed() + 4);
  const Device& dev = devices[0];
  Tensor w = random_tensor(rng, {48, 256}, DType::kBF16, dev, -1, 1);
  std::vector<Tensor> few{random_tensor(rng, {1, 256}, DType::kBF16, dev, -1, 1), w};
  std::vector<Tensor> eight{random_tensor(rng, {8, 256}, DType::kBF16, dev, -1, 1), w};
  std::vector<Tensor> many{random_tensor(rng, {9, 256}, DType::kBF16, dev, -1, 1), w};
  std::string cublas_missing = refusal(*vendor, many);
  if (!cublas_missing.empty()) GTEST_SKIP() << cublas_missing;
  Policy saved = policy();
  EXPECT_NE(refusal(*vendor, few).find("native GEMV"), std::string::npos);
  EXPECT_NE(refusal(*native, many).find("9 rows"), std::string::npos);
  // 2 to 8 rows: the GEMV serves them, but cuBLAS measured faster and keeps them.
  EXPECT_EQ(refusal(*native, eight), "");
  EXPECT_EQ(refusal(*vendor, eight), "");
  Policy vendor_only = saved;
  vendor_only.op_providers["linear"] = {Provider::kVendor};
  set_policy(vendor_only);
  EXPECT_EQ(refusal(*vendor, few), "");
  Policy strict = saved;
  strict.strict = true;
  set_policy(strict);
  EXPECT_EQ(refusal(*vendor, few), "");
  set_policy(saved);
  // Both sides of the hand-over through dispatch agree with the reference.
  for (const auto& in : {few, eight, many}) {
    auto got = call("linear", in);
    auto want = call_reference("linear", in);
    std::string diff = compare(got[0], want[0], tolerance(DType::kBF16, 256));
    EXPECT_TRUE(diff.empty()) << diff;
  }
}

// Recorded once, replayed on new x data: nothing in the launch path allocates or synchronizes.
TEST(CudaGemv, GraphReplaySeesNewInput) {
  auto devices = cuda_devices();
  if (devices.empty()) GTEST_SKIP() << "no CUDA device";
  const Device& dev = devices[0];
  if (!runtime::Graph::supported(dev)) GTEST_SKIP() << "no graph support on " << dev.spec();
  Rng rng(test_seed() + 5);
  const int64_t n = 1000, k = 1536;
  Tensor x = random_tensor(rng, {1, k}, DType::kBF16, dev, -1, 1);
  Tensor w = random_tensor(rng, {n, k}, DType::kBF16, dev, -1, 1);
  Tensor b = random_tensor(rng, {n}, DType::kBF16, dev, -1, 1);
  std::vector<Tensor> out{Tensor::empty({1, n}, DType::kBF16, dev)};
  call_out("linear", {x, w, b}, {}, out);  // first use outside the capture
  auto graph = runtime::Graph::capture(
      dev,
      [&] {
        call_out("linear", {x, w, b}, {}, out);
      },
      dev.allocator().create_pool());
  Tensor x2 = random_tensor(rng, {1, k}, DType::kBF16, dev, -1, 1);
  x.copy_(x2);
  poison(out[0]);
  graph.replay();
  auto want = call_reference("linear", {x2, w, b});
  std::string diff = compare(out[0], want[0], tolerance(DType::kBF16, k));
  EXPECT_TRUE(diff.empty()) << diff;
}

// GGUF q8_0 / q4_0 weights through the native linear_quantized, with both GEMV kernels
// (FLAGSTONE_QUANT_GEMV=staged: shared-memory staged rows; unset: one warp per row).
TEST(CudaGemv, QuantizedBothKernelsMatchReference) {
  auto devices = cuda_devices();
  if (devices.empty()) GTEST_SKIP() << "no CUDA device";
  const Implementation* impl = impl_of("linear_quantized", Provider::kNative);
  ASSERT_NE(impl, nullptr);
  Rng rng(test_seed() + 6);
  const Device& dev = devices[0];
  for (const char* kernel : {"staged", "warp"}) {
    setenv("FLAGSTONE_QUANT_GEMV", kernel, 1);
    for (DType q : {DType::kQ8_0, DType::kQ4_0})
      for (auto [m, k, n] : {std::tuple<int64_t, int64_t, int64_t>{1, 256, 9},
                             {3, 4096, 40},
                             {8, 2048 + 256, 17},
                             {2, 96, 5}}) {
        SCOPED_TRACE(std::string(kernel) + " " + std::string(dtype_name(q)) +
                     " m=" + std::to_string(m) + " k=" + std::to_string(k));
        size_t block = dtype_info(q).block_bytes;
        std::vector<uint8_t> bytes(static_cast<size_t>(n * k / 32) * block);
        for (size_t b = 0; b < bytes.size(); b += block) {
          uint16_t h = Half(static_cast<float>(rng.uniform(0.005, 0.02))).bits;
          std::memcpy(&bytes[b], &h, 2);
          for (size_t j = 2; j < block; ++j)
            bytes[b + j] = static_cast<uint8_t>(rng.integer(0, 255));
        }
        Tensor w = Tensor::from_host(bytes.data(), bytes.size(), {n, k}, q, dev);
        Tensor x = random_tensor(rng, {m, k}, DType::kBF16, dev, -1, 1);
        std::vector<Tensor> in{x, w};
        if (m % 2 == 1) in.push_back(random_tensor(rng, {n}, DType::kBF16, dev, -1, 1));
        expect_matches(*impl, in, k);
      }
  }
  unsetenv("FLAGSTONE_QUANT_GEMV");
}

}  // namespace
}  // namespace flagstone::ops::testing
