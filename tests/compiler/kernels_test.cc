// Runs every test kernel on every device that has a compiler target (cpu, OpenCL...) on fresh
// random inputs with odd sizes and non-contiguous strides, against plain C++ references.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "compiler/test_kernels.h"
#include "compiler/test_util.h"
#include "flagstone/base/half.h"
#include "flagstone/compiler/ir.h"
#include "flagstone/compiler/kernel.h"
#include "flagstone/runtime/tensor.h"

namespace flagstone::compiler::testing {
namespace {

using runtime::Device;

// One Kernel object per test kernel for the whole binary: each compiles once per device.
const Kernel& kernel(const std::string& name) {
  static std::map<std::string, std::unique_ptr<Kernel>>* kernels = [] {
    auto* m = new std::map<std::string, std::unique_ptr<Kernel>>();
    for (auto& tk : all_test_kernels())
      (*m)[tk.name] = std::make_unique<Kernel>(tk.name, tk.build, tk.configs);
    return m;
  }();
  return *kernels->at(name);
}

int64_t cdiv(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

class CompilerKernels : public ::testing::TestWithParam<Device> {
 protected:
  Device dev() const { return GetParam(); }
  Stream stream() const { return Stream::default_stream(GetParam()); }
  template <typename T>
  Tensor upload(const std::vector<T>& v, const Shape& shape) const {
    return Tensor::from_vector(v, shape, dev());
  }
  Tensor poisoned(const Shape& shape, DType dtype) const {
    Tensor t = Tensor::empty(shape, dtype, dev());
    t.fill_bytes_(0x7f);
    return t;
  }
  void run_reduce(const Config& config) const;
  void run_softmax(const Config& config) const;
};

TEST_P(CompilerKernels, UnaryMathOnStridedTensors) {
  int64_t n = random_size(300, 700);
  std::vector<float> raw = random_floats(static_cast<size_t>(2 * n), -2.5f, 2.5f);
  Tensor x = upload(raw, {2 * n}).slice(0, 0, 2 * n, 2);  // stride 2
  Tensor out_storage = poisoned({n, kNumUnary}, DType::kF32);
  Tensor out = out_storage.t();  // [kNumUnary, n] with strides (1, kNumUnary)
  kernel("unary").launch(stream(), cdiv(n, 128), {x, out});
  std::vector<float> got = out.to_vector<float>();
  for (int f = 0; f < kNumUnary; ++f) {
    std::vector<float> g(got.begin() + f * n, got.begin() + (f + 1) * n);
    std::vector<double> want(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      double v = raw[static_cast<size_t>(2 * i)];
      double a = std::fabs(v);
      double r[kNumUnary] = {std::exp(v),
                             std::exp2(v),
                             std::log(a + 1),
                             std::log2(a + 1),
                             std::sqrt(a),
                             1 / std::sqrt(a + 0.5),
                             std::sin(v),
                             std::cos(v),
                             std::tanh(v),
                             std::erf(v),
                             a,
                             std::floor(v),
                             std::ceil(v),
                             -v,
                             std::pow(a, 1.5)};
      want[static_cast<size_t>(i)] = r[f];
    }
    // f32 results against a double reference: OpenCL allows up to 16 ulp for pow and erf.
    expect_close(g, want, 4e-6, 1e-6, std::string("unary ") + kUnaryNames[f]);
  }
}

TEST_P(CompilerKernels, BinaryOpsComparisonsAndSelect) {
  int64_t n = random_size(200, 500);
  auto xf = random_floats(static_cast<size_t>(n), -3, 3);
  auto yf = random_floats(static_cast<size_t>(n), 0.5f, 3);
  for (size_t i = 0; i < yf.size(); i += 2) yf[i] = -yf[i];
  auto xi = random_ints(static_cast<size_t>(n), -1000, 1000);
  auto yi = random_ints(static_cast<size_t>(n), 1, 50);
  for (size_t i = 0; i < yi.size(); i += 3) yi[i] = -yi[i];
  Tensor of = poisoned({kNumBinaryF, n}, DType::kF32);
  Tensor oi = poisoned({kNumBinaryI, n}, DType::kI32);
  kernel("binary").launch(
      stream(), cdiv(n, 64),
      {upload(xf, {n}), upload(yf, {n}), upload(xi, {n}), upload(yi, {n}), of, oi, n});
  std::vector<float> gf = of.to_vector<float>();
  std::vector<int32_t> gi = oi.to_vector<int32_t>();
  std::vector<float> wf(gf.size());
  std::vector<int32_t> wi(gi.size());
  for (int64_t i = 0; i < n; ++i) {
    float a = xf[static_cast<size_t>(i)], b = yf[static_cast<size_t>(i)];
    float rf[kNumBinaryF] = {a + b,          a - b,          a * b,         a / b,
                             std::min(a, b), std::max(a, b), a > b ? a : b, a <= b ? 1.0f : 0.0f,
                             a * 2 - 0.5f};
    for (int f = 0; f < kNumBinaryF; ++f) wf[static_cast<size_t>(f * n + i)] = rf[f];
    int32_t p = xi[static_cast<size_t>(i)], q = yi[static_cast<size_t>(i)];
    int32_t ri[kNumBinaryI] = {
        p + q,  p - q,          p * q,
        p / q,  p % q,          p & q,
        p | q,  p ^ q,          static_cast<int32_t>(static_cast<uint32_t>(p) << 3),
        p >> 2, std::min(p, q), std::max(p, q),
        p < q,  p >= q,         (p == q) || (p != 0),
        ~p};
    for (int f = 0; f < kNumBinaryI; ++f) wi[static_cast<size_t>(f * n + i)] = ri[f];
  }
  expect_close(gf, wf, 3e-7, 0, "binary f32");
  EXPECT_EQ(gi, wi);
}

TEST_P(CompilerKernels, CastsBetweenFloatAndIntegerTypes) {
  int64_t n = random_size(200, 400);
  auto x = random_floats(static_cast<size_t>(n), -100, 100);
  x[0] = 0;
  std::vector<Half> h(static_cast<size_t>(n));
  for (size_t i = 0; i < h.size(); ++i) h[i] = Half(random_floats(1, -600, 600)[0]);
  Tensor o_f16 = poisoned({n}, DType::kF16), o_bf16 = poisoned({n}, DType::kBF16);
  Tensor o_i32 = poisoned({n}, DType::kI32), o_i8 = poisoned({n}, DType::kI8);
  Tensor o_u8 = poisoned({n}, DType::kU8), o_bool = poisoned({n}, DType::kBool);
  Tensor o_f64 = poisoned({n}, DType::kF64), o_i64 = poisoned({n}, DType::kI64);
  Tensor o_back = poisoned({n}, DType::kF32);
  kernel("casts").launch(stream(), cdiv(n, 128),
                         {upload(x, {n}), upload(h, {n}), o_f16, o_bf16, o_i32, o_i8, o_u8, o_bool,
                          o_f64, o_i64, o_back, n});
  auto f16 = o_f16.to_vector<Half>();
  auto bf16 = o_bf16.to_vector<BFloat16>();
  auto i32 = o_i32.to_vector<int32_t>();
  auto i8 = o_i8.to_vector<int8_t>();
  auto u8 = o_u8.to_vector<uint8_t>();
  auto bl = o_bool.to_double_vector();
  auto f64 = o_f64.to_vector<double>();
  auto i64 = o_i64.to_vector<int64_t>();
  auto back = o_back.to_vector<float>();
  for (size_t i = 0; i < x.size(); ++i) {
    SCOPED_TRACE("element " + std::to_string(i) + " x=" + std::to_string(x[i]));
    EXPECT_EQ(f16[i].bits, float_to_f16_bits(x[i]));
    EXPECT_EQ(bf16[i].bits, float_to_bf16_bits(x[i]));
    EXPECT_EQ(i32[i], static_cast<int32_t>(x[i]));
    EXPECT_EQ(i8[i], static_cast<int8_t>(x[i]));
    EXPECT_EQ(u8[i], static_cast<uint8_t>(std::fabs(x[i])));
    EXPECT_EQ(bl[i], x[i] != 0 ? 1.0 : 0.0);
    EXPECT_EQ(f64[i], static_cast<double>(x[i]) * 3.0);
    EXPECT_EQ(i64[i], static_cast<int64_t>(x[i]) * 1000000007LL);
    float hv = h[i];
    float twice = f16_bits_to_float(float_to_f16_bits(hv * 2));
    EXPECT_EQ(back[i], f16_bits_to_float(float_to_f16_bits(twice + hv)));
  }
}

TEST_P(CompilerKernels, ReductionsAlongBothAxes) {
  for (const Config& config : kernel("reduce").configs()) {
    SCOPED_TRACE(config.str());
    run_reduce(config);
  }
}

void CompilerKernels::run_reduce(const Config& config) const {
  int64_t m = random_size(20, 40), n = random_size(17, 31);
  auto raw = random_floats(static_cast<size_t>(m * n), -5, 5);
  Tensor x = upload(raw, {n, m}).t();  // [m, n], strides (1, m); x[i][j] = raw[j*m + i]
  Tensor out = poisoned({5, m}, DType::kF32);
  Tensor idx = poisoned({2, m}, DType::kI32);
  Tensor colsum = upload(std::vector<float>(static_cast<size_t>(n), 0.0f), {n});
  kernel("reduce").launch(stream(), cdiv(m, 4), {x, out, idx, colsum}, config);
  auto go = out.to_vector<float>();
  auto gi = idx.to_vector<int32_t>();
  auto gc = colsum.to_vector<float>();
  std::vector<double> wo(go.size()), wc(static_cast<size_t>(n), 0.0);
  std::vector<int32_t> wi(gi.size());
  for (int64_t i = 0; i < m; ++i) {
    double s = 0, mx = -1e300, mn = 1e300;
    int32_t amx = 0, amn = 0;
    for (int64_t j = 0; j < n; ++j) {
      double v = raw[static_cast<size_t>(j * m + i)];
      s += v;
      wc[static_cast<size_t>(j)] += v;
      if (v > mx) mx = v, amx = static_cast<int32_t>(j);
      if (v < mn) mn = v, amn = static_cast<int32_t>(j);
    }
    wo[static_cast<size_t>(i)] = s;
    wo[static_cast<size_t>(m + i)] = mx;
    wo[static_cast<size_t>(2 * m + i)] = mn;
    wi[static_cast<size_t>(i)] = amx;
    wi[static_cast<size_t>(m + i)] = amn;
  }
  go.resize(static_cast<size_t>(3 * m));
  wo.resize(static_cast<size_t>(3 * m));
  expect_close(go, wo, 1e-5, 1e-5, "row sum/max/min");
  EXPECT_EQ(gi, wi);
  expect_close(gc, wc, 1e-5, 1e-4, "column sums through atomic_add");
}

TEST_P(CompilerKernels, OnlineSoftmaxWithLoopCarriedTiles) {
  for (const Config& config : kernel("softmax").configs()) {
    SCOPED_TRACE(config.str());
    run_softmax(config);
  }
}

void CompilerKernels::run_softmax(const Config& config) const {
  int64_t rows = random_size(3, 6), n = random_size(150, 330);
  auto raw = random_floats(static_cast<size_t>(rows * 2 * n), -8, 8);
  Tensor x = upload(raw, {rows, 2 * n}).slice(1, 0, 2 * n, 2);  // strides (2n, 2)
  Tensor y = poisoned({rows, n}, DType::kF32);
  kernel("softmax").launch(stream(), rows, {x, y}, config);
  auto got = y.to_vector<float>();
  std::vector<double> want(got.size());
  for (int64_t r = 0; r < rows; ++r) {
    double mx = -1e300, s = 0;
    for (int64_t j = 0; j < n; ++j)
      mx = std::max<double>(mx, raw[static_cast<size_t>(r * 2 * n + 2 * j)]);
    for (int64_t j = 0; j < n; ++j) s += std::exp(raw[static_cast<size_t>(r * 2 * n + 2 * j)] - mx);
    for (int64_t j = 0; j < n; ++j)
      want[static_cast<size_t>(r * n + j)] =
          std::exp(raw[static_cast<size_t>(r * 2 * n + 2 * j)] - mx) / s;
  }
  expect_close(got, want, 2e-5, 1e-8, "softmax");
}

// C = A @ B through kernel `name` (build_matmul), checked against a float64 product of the
// same rounded inputs. A is the column window [0, k) of row-major [m, kp] storage; B is the
// window [0, n) of row-major [k, ld_b] storage, or with `b_trans` the transpose of the window
// [0, k) of [n, ld_b] storage (strides (1, ld_b)). So the GPU pipeline sees masked rows, a K
// tail, 16-byte chunks cut short by the mask (k or n not a multiple of 8) and, with odd
// strides or a transposed B, the element-load path.
template <typename T>
void run_matmul(const Device& dev, const std::string& name, const Config& config, int64_t m,
                int64_t k, int64_t n, int64_t kp, int64_t ld_b, bool b_trans) {
  auto fa = random_floats(static_cast<size_t>(m * kp), -1, 1);
  auto fb = random_floats(static_cast<size_t>((b_trans ? n : k) * ld_b), -1, 1);
  std::vector<T> a(fa.size()), b(fb.size());
  for (size_t i = 0; i < fa.size(); ++i) a[i] = T(fa[i]);
  for (size_t i = 0; i < fb.size(); ++i) b[i] = T(fb[i]);
  Tensor ta = Tensor::from_vector(a, {m, kp}, dev).slice(1, 0, k);
  Tensor tb = b_trans ? Tensor::from_vector(b, {n, ld_b}, dev).slice(1, 0, k).t()
                      : Tensor::from_vector(b, {k, ld_b}, dev).slice(1, 0, n);
  Tensor tc = Tensor::empty({m, n}, DType::kF32, dev);
  tc.fill_bytes_(0x7f);
  kernel(name).launch(Stream::default_stream(dev),
                      {cdiv(m, config.get("BM")), cdiv(n, config.get("BN"))}, {ta, tb, tc}, config);
  auto got = tc.to_vector<float>();
  std::vector<double> want(got.size());
  double worst_scale = 0;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0, scale = 0;
      for (int64_t p = 0; p < k; ++p) {
        double av = static_cast<float>(a[static_cast<size_t>(i * kp + p)]);
        double bv =
            static_cast<float>(b[static_cast<size_t>(b_trans ? j * ld_b + p : p * ld_b + j)]);
        s += av * bv;
        scale += std::fabs(av * bv);
      }
      want[static_cast<size_t>(i * n + j)] = s;
      worst_scale = std::max(worst_scale, scale);
    }
  // f32 accumulation of exact products: error bounded by k ulps of the magnitude sum.
  expect_close(got, want, 0, 1e-6 * static_cast<double>(k) * worst_scale,
               name + " " + std::string(dtype_name(static_cast<DType>(config.get("DTYPE")))) + " " +
                   std::to_string(m) + "x" + std::to_string(k) + "x" + std::to_string(n) +
                   " (row strides " + std::to_string(kp) + ", " + std::to_string(ld_b) +
                   (b_trans ? ", B transposed)" : ")"));
}

template <typename T>
void run_small_matmul(const Device& dev, const Config& config) {
  int64_t m = random_size(20, 40), k = random_size(20, 45), n = random_size(17, 35);
  run_matmul<T>(dev, "matmul", config, m, k, n, k, k, true);
}

TEST_P(CompilerKernels, TileDotInKLoopForF32F16Bf16) {
  const auto& configs = kernel("matmul").configs();
  run_small_matmul<float>(dev(), configs[0]);
  run_small_matmul<Half>(dev(), configs[1]);
  run_small_matmul<BFloat16>(dev(), configs[2]);
  run_small_matmul<Half>(dev(), configs[3]);
  run_small_matmul<BFloat16>(dev(), configs[4]);
}

TEST_P(CompilerKernels, GemmPipelineMasksTailsAndViews) {
  const auto& configs = kernel("gemm").configs();
  int64_t m = random_size(70, 140);
  // Contiguous, sizes multiples of 8: whole 16-byte chunks, masked rows, K tail.
  run_matmul<BFloat16>(dev(), "gemm", configs[0], m, 200, 136, 200, 136, false);
  // Windows of odd width: chunks cut short by the K and N masks.
  int64_t k = random_size(40, 90) | 1, n = random_size(70, 130) | 1;
  run_matmul<BFloat16>(dev(), "gemm", configs[0], m, k, n, (k + 7) / 8 * 8, (n + 7) / 8 * 8, false);
  // Odd row strides and a transposed B: no 16-byte chunks, element loads.
  run_matmul<Half>(dev(), "gemm", configs[1], m, k, n, k + 2, n, false);
  run_matmul<Half>(dev(), "gemm", configs[1], m, 64, 72, 64, 64, true);
  // B as the transpose of row-major [n, k] storage (x @ w.T): 16-byte copies along k.
  run_matmul<BFloat16>(dev(), "gemm", configs[0], m, 200, 136, 200, 200, true);
  // Fragments loaded step by step (no prefetch), three 16-wide steps per stage.
  run_matmul<BFloat16>(dev(), "gemm", configs[2], m, 200, 136, 200, 136, false);
}

// The tile shapes sm_90 lowers to warpgroup MMA (other devices run them as any tile dot): whole
// tiles and the K tail, masked edges of odd width, B transposed (K-major in shared memory) and
// unaligned strides (element loads into the swizzled layout); configs[3] copies by cp.async,
// configs[4] by TMA where the tiles allow (the default).
// Why `config` of `name` cannot be built for this device (its tiles need more local memory than
// the device has: NVIDIA's OpenCL offers 48 KiB), or empty. Any other failure is the test's.
std::string does_not_fit(const std::string& name, const Config& config, const Device& device) {
  try {
    kernel(name).compiled(config, device);
  } catch (const Error& e) {
    if (e.category() == ErrorCategory::kUnsupported) return e.message();
    throw;
  }
  return "";
}

TEST_P(CompilerKernels, GemmWarpgroupTilesMasksTailsAndViews) {
  const auto& configs = kernel("gemm").configs();
  for (size_t c : {3, 4})
    if (std::string why = does_not_fit("gemm", configs[c], dev()); !why.empty())
      GTEST_SKIP() << why;
  int64_t m = random_size(130, 200);
  int64_t k = random_size(70, 150) | 1, n = random_size(140, 260) | 1;
  run_matmul<BFloat16>(dev(), "gemm", configs[3], m, 256, 256, 256, 256, false);
  run_matmul<BFloat16>(dev(), "gemm", configs[3], m, 200, 136, 200, 136, false);
  run_matmul<BFloat16>(dev(), "gemm", configs[3], m, k, n, (k + 7) / 8 * 8, (n + 7) / 8 * 8, false);
  run_matmul<BFloat16>(dev(), "gemm", configs[3], m, 200, 136, 200, 200, true);
  run_matmul<BFloat16>(dev(), "gemm", configs[3], m, k, n, k + 2, n, false);
  run_matmul<Half>(dev(), "gemm", configs[4], m, 384, 192, 384, 192, false);
  run_matmul<Half>(dev(), "gemm", configs[4], m, k, n, (k + 7) / 8 * 8, (n + 7) / 8 * 8, false);
  run_matmul<Half>(dev(), "gemm", configs[4], m, 200, 136, 200, 200, true);
  run_matmul<Half>(dev(), "gemm", configs[4], m, k, n, k + 2, n + 1, false);
}

// sm_90 with tensor-memory-accelerator copies for the interior tiles, cp.async at the edges and
// for views no tensor map describes.
TEST_P(CompilerKernels, GemmTmaTilesMasksTailsAndViews) {
  const auto& configs = kernel("gemm").configs();
  if (std::string why = does_not_fit("gemm", configs[5], dev()); !why.empty()) GTEST_SKIP() << why;
  int64_t m = random_size(130, 200);
  int64_t k = random_size(70, 150) | 1, n = random_size(140, 260) | 1;
  run_matmul<BFloat16>(dev(), "gemm", configs[5], m, 256, 256, 256, 256, false);
  run_matmul<BFloat16>(dev(), "gemm", configs[5], m, 200, 136, 200, 136, false);
  run_matmul<BFloat16>(dev(), "gemm", configs[5], m, 200, 136, 200, 200, true);
  run_matmul<BFloat16>(dev(), "gemm", configs[5], m, k, n, (k + 7) / 8 * 8, (n + 7) / 8 * 8, false);
  run_matmul<BFloat16>(dev(), "gemm", configs[5], m, k, n, k + 2, n, false);
}

TEST_P(CompilerKernels, AtomicAddAndMax) {
  int64_t n = random_size(500, 900);
  auto x = random_floats(static_cast<size_t>(n), -1, 1);
  Tensor sum_f = upload(std::vector<float>(7, 0.0f), {7});
  Tensor max_f = upload(std::vector<float>(7, -1e30f), {7});
  Tensor cnt_i = upload(std::vector<int32_t>(7, 0), {7});
  Tensor max_i = upload(std::vector<int32_t>(7, -1), {7});
  Tensor total = upload(std::vector<float>(1, 0.0f), {1});
  kernel("atomics").launch(stream(), cdiv(n, 64),
                           {upload(x, {n}), sum_f, max_f, cnt_i, max_i, total, n});
  std::vector<double> ws(7, 0), wm(7, -1e30);
  std::vector<int32_t> wc(7, 0), wmi(7, -1);
  double wt = 0;
  for (int64_t i = 0; i < n; ++i) {
    size_t b = static_cast<size_t>(i % 7);
    float v = x[static_cast<size_t>(i)];
    ws[b] += v;
    wm[b] = std::max<double>(wm[b], v);
    wc[b] += 1;
    wmi[b] = static_cast<int32_t>(i);
    wt += v;
  }
  expect_close(sum_f.to_vector<float>(), ws, 0, 1e-4, "atomic_add f32");
  expect_close(max_f.to_vector<float>(), wm, 0, 0, "atomic_max f32");
  EXPECT_EQ(cnt_i.to_vector<int32_t>(), wc);
  EXPECT_EQ(max_i.to_vector<int32_t>(), wmi);
  expect_close(total.to_vector<float>(), std::vector<double>{wt}, 0, 1e-3, "scalar atomic_add");
}

TEST_P(CompilerKernels, TwoDimensionalGridBroadcastTransposeAndF64Scalar) {
  int64_t m = random_size(17, 30), n = random_size(33, 60);
  auto xr = random_floats(static_cast<size_t>(3 * m), -2, 2);
  auto yr = random_floats(static_cast<size_t>(n), -2, 2);
  auto tr = random_floats(static_cast<size_t>(m * n), -2, 2);
  Tensor x = upload(xr, {3 * m}).slice(0, 0, 3 * m, 3);
  Tensor y = upload(yr, {n});
  Tensor t = upload(tr, {m, n}).t();  // [n, m]; t[j][i] = tr[i*n + j]
  Tensor out = poisoned({m, n}, DType::kF32);
  double alpha = 0.37;
  kernel("outer").launch(stream(), {cdiv(m, 8), 2}, {x, y, t, out, alpha});
  auto got = out.to_vector<float>();
  std::vector<float> want(got.size());
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j)
      want[static_cast<size_t>(i * n + j)] =
          xr[static_cast<size_t>(3 * i)] * yr[static_cast<size_t>(j)] +
          static_cast<float>(static_cast<double>(tr[static_cast<size_t>(i * n + j)]) * alpha);
  expect_close(got, want, 1e-6, 1e-6, "outer");
}

TEST_P(CompilerKernels, ContiguousVectorAccessesWithMasksAndMisalignedViews) {
  for (const Config& config : kernel("vcopy").configs()) {
    DType dtype = static_cast<DType>(config.get("DTYPE"));
    for (int64_t offset : {0, 1}) {
      SCOPED_TRACE(config.str() + " offset " + std::to_string(offset));
      int64_t n = random_size(2000, 3100);
      auto raw = random_floats(static_cast<size_t>(n + 1), -100, 100);
      std::vector<double> want(static_cast<size_t>(n));
      Tensor x;
      if (dtype == DType::kF16) {
        std::vector<Half> h(raw.size());
        for (size_t i = 0; i < raw.size(); ++i) h[i] = Half(raw[i]);
        for (int64_t i = 0; i < n; ++i)
          want[static_cast<size_t>(i)] =
              2.0 * static_cast<float>(h[static_cast<size_t>(i + offset)]);
        x = upload(h, {n + 1});
      } else {
        for (int64_t i = 0; i < n; ++i)
          want[static_cast<size_t>(i)] = 2.0 * raw[static_cast<size_t>(i + offset)];
        x = upload(raw, {n + 1});
      }
      // A view that starts one element in: vector accesses must fall back when misaligned.
      x = x.slice(0, offset, offset + n);
      Tensor y = poisoned({n + 1}, dtype).slice(0, offset, offset + n);
      kernel("vcopy").launch(stream(), cdiv(n, 1024), {x, y, n}, config);
      std::vector<float> got;
      if (dtype == DType::kF16) {
        for (Half h : y.contiguous().to_vector<Half>()) got.push_back(static_cast<float>(h));
      } else {
        got = y.contiguous().to_vector<float>();
      }
      expect_close(got, want, 0, 0, "vcopy");
    }
  }
}

TEST_P(CompilerKernels, LaunchChecksArguments) {
  const Kernel& k = kernel("binary");
  Tensor f = Tensor::empty({8}, DType::kF32, dev());
  Tensor i = Tensor::empty({8}, DType::kI32, dev());
  auto message = [&](const std::vector<Arg>& args) {
    try {
      k.launch(stream(), 1, args);
    } catch (const Error& e) {
      return e.message();
    }
    return std::string("(no error)");
  };
  EXPECT_THAT(message({f, f, i, i, f, i}), ::testing::HasSubstr("takes 7 arguments, got 6"));
  EXPECT_THAT(message({f, i, i, i, f, i, 8}),
              ::testing::HasSubstr("argument 'yf' must be a f32 tensor, got i32[8]"));
  EXPECT_THAT(message({f, f, i, i, f, i, 8.5}), ::testing::HasSubstr("argument 'n' is i32"));
  EXPECT_THAT(message({f, f, i, i, f, 3, 8}),
              ::testing::HasSubstr("argument 'oi' must be a i32 tensor"));
  Tensor m2 = Tensor::empty({2, 4}, DType::kF32, dev());
  try {
    kernel("unary").launch(stream(), 1, {m2, m2});
    ADD_FAILURE() << "rank mismatch accepted";
  } catch (const Error& e) {
    EXPECT_THAT(e.message(), ::testing::HasSubstr("argument 'x' must have rank 1"));
  }
}

TEST_P(CompilerKernels, KernelReadFromTextRunsLikeTheBuiltOne) {
  const Kernel& built = kernel("softmax");
  Kernel from_text(ir::parse(ir::print(built.build(built.configs()[0]))));
  EXPECT_EQ(from_text.name(), "softmax");
  int64_t rows = 3, n = random_size(70, 200);
  Tensor x = upload(random_floats(static_cast<size_t>(rows * n), -4, 4), {rows, n});
  Tensor y1 = poisoned({rows, n}, DType::kF32);
  Tensor y2 = poisoned({rows, n}, DType::kF32);
  built.launch(stream(), rows, {x, y1});
  from_text.launch(stream(), rows, {x, y2});
  EXPECT_EQ(y1.to_vector<float>(), y2.to_vector<float>());
  EXPECT_THROW(from_text.launch(stream(), rows, {x, y2}, Config{{"BLOCK", 32}}), Error);
}

INSTANTIATE_TEST_SUITE_P(AllTargets, CompilerKernels, ::testing::ValuesIn(target_devices()),
                         [](const ::testing::TestParamInfo<Device>& info) {
                           std::string s = info.param.spec();
                           std::replace(s.begin(), s.end(), ':', '_');
                           return s;
                         });

}  // namespace
}  // namespace flagstone::compiler::testing
