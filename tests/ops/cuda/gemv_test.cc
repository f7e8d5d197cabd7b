// The native cuda GEMV behind linear and mm for 1 to 8 activation rows: every row count, odd and
// long inner dims (the element path, the 16-byte path and its remainder), bias, f32/f16/bf16,
// every tuning variant, strided and misaligned operands, CUDA-graph replay, and the hand-over
// between it and cuBLAS under the dispatch policy. Checked against the float64 reference; skips
// without a CUDA device.
#include <gtest/gtest.h>

#include <cmath>
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
        for (int unroll : {4, 8})
          for (bool early : {false, true}) {
            SCOPED_TRACE(std::string(dtype_name(d)) + " m=" + std::to_string(m) +
                         " warps/row=" + std::to_string(wpr) + " unroll=" + std::to_string(unroll) +
                         (early ? " early weights" : ""));
            Tensor out = Tensor::empty({m, n}, d, dev);
            poison(out);
            // x is written by the kernels just before the product (a poison fill, then a copy):
            // with early weight loads under PDL the product must still wait for them.
            Tensor xs = Tensor::empty({m, k}, d, dev);
            poison(xs);
            xs.copy_(x);
            auto ptr = [](const Tensor& t) {
              return static_cast<char*>(t.buffer().handle()) + t.byte_offset();
            };
            cuda::GemvArgs a;
            a.out = ptr(out), a.x = ptr(xs), a.w = ptr(w), a.bias = ptr(b);
            a.m = m, a.n = n, a.k = k, a.ldx = k, a.ldw = k, a.ldo = n;
            a.warps_per_row = wpr, a.unroll = unroll, a.early_weights = early;
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

// The decode step's fused GEMV (launch_fused_gemv): the rms_norm and silu * up prologues, bias and
// the residual add, f32/f16/bf16, 1 to 8 rows, k with partial unrolled steps at the end, every
// warps-per-row split and one block per SM walking many tiles. The float64 reference rounds the
// staged x and the product before the residual add as the unfused ops do.
double round_to(DType d, double v) {
  if (d == DType::kF16) return static_cast<float>(Half(static_cast<float>(v)));
  if (d == DType::kBF16) return static_cast<float>(BFloat16(static_cast<float>(v)));
  return static_cast<float>(v);
}

struct FusedCase {
  int64_t m, n, k;
  cuda::GemvPrologue prologue;
  bool bias, residual;
  int wpr = 0, bpsm = 0;
  bool streamed = false;    // gemv_stream.cu's kernel (one row) instead of the fused GEMV
  int ring_kib = 0;         // its ring (0: the default)
  bool silu_after = false;  // the streamed GEMV's silu epilogue: out = silu(gate) * up
};

// silu(g) * u against the reference, where the products g and u may each differ from the
// reference's by the product tolerance (as in every GEMV test): that difference reaches the output
// times |u silu'(g)| and |silu(g)|, which for a large u and a negative g is far above the output's
// own size (an f32 check with the plain tolerance failed on correct arithmetic for some seeds).
void expect_silu_within(const std::vector<double>& got, const std::vector<double>& want,
                        const std::vector<double>& products, int64_t h, const Tolerance& tol) {
  auto bound = [&](double v) { return tol.atol + tol.rtol * std::fabs(v); };
  for (size_t i = 0; i < got.size(); ++i) {
    const size_t r = i / static_cast<size_t>(h), j = i % static_cast<size_t>(h);
    const double g = products[r * 2 * h + j], u = products[r * 2 * h + h + j];
    const double sigma = 1 / (1 + std::exp(-g)), slope = sigma * (1 + g * (1 - sigma));
    const double allowed =
        bound(want[i]) + std::fabs(u * slope) * bound(g) + std::fabs(g * sigma) * bound(u);
    ASSERT_LE(std::fabs(got[i] - want[i]), allowed)
        << "element " << i << ": got " << got[i] << ", expected " << want[i] << " (g " << g
        << ", u " << u << ")";
  }
}

void check_fused(Rng& rng, const Device& dev, DType d, const FusedCase& c) {
  const bool silu = c.prologue == cuda::GemvPrologue::kSiluMul;
  const int64_t ldx = silu ? 2 * c.k : c.k;
  Tensor x = random_tensor(rng, {c.m, ldx}, d, dev, -1, 1);
  Tensor w = random_tensor(rng, {c.n, c.k}, d, dev, -1, 1);
  Tensor nw = random_tensor(rng, {c.k}, d, dev, 0.5, 1.5);
  Tensor b = random_tensor(rng, {c.n}, d, dev, -1, 1);
  Tensor res = random_tensor(rng, {c.m, c.n}, d, dev, -1, 1);
  const std::vector<double> xv = x.to_double_vector(), wv = w.to_double_vector(),
                            nv = nw.to_double_vector(), bv = b.to_double_vector(),
                            rv = res.to_double_vector();
  const double eps = 1e-5;
  std::vector<double> want(static_cast<size_t>(c.m * c.n));
  std::vector<double> products;  // the reference's gate/up products, with the silu epilogue
  for (int64_t r = 0; r < c.m; ++r) {
    std::vector<double> staged(static_cast<size_t>(c.k));
    double ss = 0;
    for (int64_t i = 0; i < c.k; ++i) ss += xv[r * ldx + i] * xv[r * ldx + i];
    const double scale = 1 / std::sqrt(ss / static_cast<double>(c.k) + eps);
    for (int64_t i = 0; i < c.k; ++i) {
      const double g = xv[r * ldx + i];
      double v = g;
      if (c.prologue == cuda::GemvPrologue::kRmsNorm) v = round_to(d, g * scale * nv[i]);
      if (silu) v = round_to(d, g / (1 + std::exp(-g)) * xv[r * ldx + c.k + i]);
      staged[i] = v;
    }
    for (int64_t j = 0; j < c.n; ++j) {
      double s = c.bias ? bv[j] : 0;
      for (int64_t i = 0; i < c.k; ++i) s += staged[i] * wv[j * c.k + i];
      want[r * c.n + j] = c.residual ? round_to(d, s) + rv[r * c.n + j] : s;
    }
    if (c.silu_after) {  // silu_and_mul of the rounded product, in place in the first half
      const int64_t h = c.n / 2;
      products.insert(products.end(), want.begin() + r * c.n, want.begin() + (r + 1) * c.n);
      for (int64_t j = 0; j < h; ++j) {
        const double g = round_to(d, want[r * c.n + j]), u = round_to(d, want[r * c.n + h + j]);
        want[r * h + j] = g / (1 + std::exp(-g)) * u;
      }
    }
  }
  const int64_t out_n = c.silu_after ? c.n / 2 : c.n;
  want.resize(static_cast<size_t>(c.m * out_n));
  auto ptr = [](const Tensor& t) {
    return static_cast<char*>(t.buffer().handle()) + t.byte_offset();
  };
  Tensor out = res;  // in place when adding the residual, as the decode step does
  if (!c.residual) {
    out = Tensor::empty({c.m, out_n}, d, dev);
    poison(out);
  }
  cuda::FusedGemvArgs a;
  a.out = ptr(out), a.x = ptr(x), a.w = ptr(w);
  a.bias = c.bias ? ptr(b) : nullptr;
  a.residual = c.residual ? ptr(res) : nullptr;
  a.norm_weight = c.prologue == cuda::GemvPrologue::kRmsNorm ? ptr(nw) : nullptr;
  a.eps = static_cast<float>(eps);
  a.prologue = c.prologue;
  if (c.silu_after) a.epilogue = cuda::GemvEpilogue::kSiluMul;
  a.m = c.m, a.n = c.n, a.k = c.k, a.ldx = ldx, a.ldw = c.k, a.ldo = c.n;
  a.warps_per_row = c.wpr, a.blocks_per_sm = c.bpsm;
  a.pdl = true;  // a no-op without a previous kernel to overlap; the kernel must still wait
  auto stream =
      static_cast<cudaStream_t>(runtime::Stream::default_stream(dev).impl().native_handle());
  if (c.streamed) {
    ASSERT_STREQ(cuda::streamed_gemv_refusal(d, a), "");
    ASSERT_EQ(cuda::launch_streamed_gemv(d, a, stream, {c.ring_kib, c.bpsm, 0}), cudaSuccess);
    const Tolerance tol = tolerance(d, c.k);
    if (c.silu_after) {
      expect_silu_within(out.to_double_vector(), want, products, c.n / 2, tol);
      return;
    }
    std::string diff = compare(out, make_tensor(want, {c.m, out_n}, d), tol);
    EXPECT_TRUE(diff.empty()) << diff;
    return;
  }
  if (c.m * c.k * static_cast<int64_t>(dtype_size(d)) > 112 * 1024) {
    // Staged x rows past the shared-memory limit: refused (the engine runs the ops unfused).
    EXPECT_NE(std::string(cuda::fused_gemv_refusal(d, a)).find("shared memory"), std::string::npos);
    return;
  }
  ASSERT_STREQ(cuda::fused_gemv_refusal(d, a), "");
  ASSERT_EQ(cuda::launch_fused_gemv(d, a, stream), cudaSuccess);
  std::string diff = compare(out, make_tensor(want, {c.m, c.n}, d), tolerance(d, c.k));
  EXPECT_TRUE(diff.empty()) << diff;
}

TEST(CudaGemv, FusedProloguesAndEpiloguesMatchReference) {
  auto devices = cuda_devices();
  if (devices.empty()) GTEST_SKIP() << "no CUDA device";
  Rng rng(test_seed() + 7);
  const Device& dev = devices[0];
  using P = cuda::GemvPrologue;
  for (DType d : {DType::kF32, DType::kF16, DType::kBF16})
    for (P p : {P::kNone, P::kRmsNorm, P::kSiluMul})
      for (auto [n, k] : {std::pair<int64_t, int64_t>{37, 296}, {300, 2056}, {9, 4104}})
        for (int64_t m : {1, 2, 5, 8}) {
          FusedCase c{m, n, k, p, m % 2 == 1, m % 2 == 0};
          SCOPED_TRACE(std::string(dtype_name(d)) + " prologue " +
                       std::to_string(static_cast<int>(p)) + " m=" + std::to_string(m) +
                       " n=" + std::to_string(n) + " k=" + std::to_string(k));
          check_fused(rng, dev, d, c);
        }
  // Every split of a row over warps, and one block per SM walking many tiles.
  for (int wpr : {1, 2, 4, 8})
    for (int bpsm : {0, 1}) {
      SCOPED_TRACE("warps/row " + std::to_string(wpr) + " blocks/SM " + std::to_string(bpsm));
      check_fused(rng, dev, DType::kBF16, {1, 4100, 264, P::kRmsNorm, true, true, wpr, bpsm});
      check_fused(rng, dev, DType::kF32, {3, 1030, 1032, P::kSiluMul, false, true, wpr, bpsm});
    }
}

// Why the streamed GEMV's tests cannot run on the first of `devices`; empty when they can.
std::string why_not_streamed(const std::vector<Device>& devices) {
  if (devices.empty()) return "no CUDA device";
  int major = 0;
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, devices[0].index());
  return major < 9 ? "the streamed GEMV needs compute capability 9.0" : "";
}

// The streamed GEMV (gemv_stream.cu, sm_90) with the same prologues and residual: one row, rows
// of whole 2 KiB chunks, the default ring with one block per SM, and 32 KiB asked (8 slots at
// least) with two.
TEST(CudaGemv, StreamedProloguesAndEpiloguesMatchReference) {
  auto devices = cuda_devices();
  if (const std::string why = why_not_streamed(devices); !why.empty()) GTEST_SKIP() << why;
  Rng rng(test_seed() + 8);
  const Device& dev = devices[0];
  using P = cuda::GemvPrologue;
  for (DType d : {DType::kF32, DType::kF16, DType::kBF16})
    for (P p : {P::kNone, P::kRmsNorm, P::kSiluMul})
      for (auto [n, k] : {std::pair<int64_t, int64_t>{37, 1024}, {300, 2048}, {9, 8192}})
        for (int variant = 0; variant < 2; ++variant) {
          const int64_t kk = d == DType::kF32 ? k / 2 : k;
          FusedCase c{
              1, n, kk, p, variant == 0, variant == 1, 0, variant + 1, true, variant ? 32 : 0};
          SCOPED_TRACE(std::string(dtype_name(d)) + " streamed prologue " +
                       std::to_string(static_cast<int>(p)) + " n=" + std::to_string(n) +
                       " k=" + std::to_string(kk) + " variant " + std::to_string(variant));
          check_fused(rng, dev, d, c);
        }
}

// The silu epilogue (the weight is [gate; up], out = silu(gate) * up): each block owns both
// halves of its rows; odd pair counts over the blocks, a pair count below the SM count, bias,
// the norm prologue in front (the decode step's gate/up), two blocks per SM and a small ring.
TEST(CudaGemv, StreamedSiluEpilogueMatchesReference) {
  auto devices = cuda_devices();
  if (const std::string why = why_not_streamed(devices); !why.empty()) GTEST_SKIP() << why;
  Rng rng(test_seed() + 9);
  const Device& dev = devices[0];
  using P = cuda::GemvPrologue;
  for (DType d : {DType::kF32, DType::kF16, DType::kBF16})
    for (auto [n, k] : {std::pair<int64_t, int64_t>{2, 1024}, {74, 2048}, {2 * 1000 + 6, 2048}})
      for (int variant = 0; variant < 2; ++variant) {
        const int64_t kk = d == DType::kF32 ? k / 2 : k;
        FusedCase c{1,
                    n,
                    kk,
                    variant ? P::kRmsNorm : P::kNone,
                    variant == 0,
                    false,
                    0,
                    variant + 1,
                    true,
                    variant ? 16 : 0,
                    true};
        SCOPED_TRACE(std::string(dtype_name(d)) + " silu epilogue n=" + std::to_string(n) +
                     " k=" + std::to_string(kk) + " variant " + std::to_string(variant));
        check_fused(rng, dev, d, c);
      }
  // Refused: an odd row count, a residual, and by the register GEMV's fused form.
  cuda::FusedGemvArgs a;
  alignas(16) static int64_t storage[1024] = {};
  a.x = a.w = a.out = storage;
  a.m = 1, a.n = 3, a.k = 1024, a.ldx = 1024, a.ldw = 1024, a.ldo = 3;
  a.epilogue = cuda::GemvEpilogue::kSiluMul;
  EXPECT_NE(std::string(cuda::streamed_gemv_refusal(DType::kBF16, a)).find("even"),
            std::string::npos);
  a.n = 4, a.residual = storage;
  EXPECT_NE(std::string(cuda::streamed_gemv_refusal(DType::kBF16, a)).find("residual"),
            std::string::npos);
  a.residual = nullptr;
  EXPECT_STREQ(cuda::streamed_gemv_refusal(DType::kBF16, a), "");
  EXPECT_NE(std::string(cuda::fused_gemv_refusal(DType::kBF16, a)).find("streamed"),
            std::string::npos);
}

TEST(CudaGemv, FusedRefusesWhatItCannotServe) {
  cuda::FusedGemvArgs a;
  alignas(16) int64_t storage[8] = {};
  a.x = a.w = a.out = storage;
  a.m = 1, a.n = 4, a.k = 64, a.ldx = 64, a.ldw = 64, a.ldo = 4;
  EXPECT_STREQ(cuda::fused_gemv_refusal(DType::kBF16, a), "");
  a.m = 9;
  EXPECT_NE(std::string(cuda::fused_gemv_refusal(DType::kBF16, a)), "");
  a.m = 1, a.k = 60, a.ldx = 60, a.ldw = 60;
  EXPECT_NE(std::string(cuda::fused_gemv_refusal(DType::kBF16, a)).find("16 bytes"),
            std::string::npos);
  a.k = 64, a.ldx = 64, a.ldw = 64;
  a.prologue = cuda::GemvPrologue::kRmsNorm;
  EXPECT_EQ(std::string(cuda::fused_gemv_refusal(DType::kBF16, a)), "no norm weight");
  a.prologue = cuda::GemvPrologue::kSiluMul;
  EXPECT_NE(std::string(cuda::fused_gemv_refusal(DType::kBF16, a)), "");
  a.prologue = cuda::GemvPrologue::kNone;
  a.k = 1 << 20, a.ldx = a.k, a.ldw = a.k;
  EXPECT_NE(std::string(cuda::fused_gemv_refusal(DType::kBF16, a)).find("shared memory"),
            std::string::npos);
  EXPECT_NE(std::string(cuda::fused_gemv_refusal(DType::kI32, a)), "");
}

}  // namespace
}  // namespace flagstone::ops::testing
