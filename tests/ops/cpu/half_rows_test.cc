// The cpu kernels' 16-lane rows of f16/bf16 (and f32) outside the row statistics: add, sub, mul
// and div, silu_and_mul and rotary embedding, on rows long enough for the vector steps and their
// tails, against the float64 reference.
//
// bf16 rows widen into even and odd lanes and narrow back with their own rounding (simd.h), so
// the arithmetic ops are checked bit for bit: products, sums and quotients of two f16/bf16 values
// round once to f32 exactly as the reference's double result does, which leaves the final
// rounding to the half type (ties to even, overflow to inf, subnormals, NaN) as the only
// difference a kernel could make.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "ops/ops_test_util.h"

namespace flagstone::ops::testing {
namespace {

const Implementation& native(const std::string& op) {
  for (const Implementation* impl : Registry::global().implementations(op, "cpu"))
    if (impl->provider == Provider::kNative) return *impl;
  throw_error(ErrorCategory::kNotFound, "no native cpu implementation of ", op);
}

std::string run_native(const std::string& op, const std::vector<Tensor>& in, const Attrs& attrs,
                       Tensor out, const Tolerance& tol) {
  poison(out);
  std::vector<Tensor> outs{out};
  call_implementation(native(op), in, attrs, outs);
  return compare(outs[0], call_reference(op, in, attrs)[0], tol);
}

// Values that reach every rounding case: ordinary ones, values near the dtype's largest (their
// products overflow), tiny ones (products in the subnormal range or flushed to 0), infinities
// and NaN, so that each 16-element block of a long row holds a few of them.
std::vector<double> operands(Rng& rng, int64_t n, DType d) {
  const double big = d == DType::kF16 ? 60000.0 : 3e38, tiny = d == DType::kF16 ? 1e-4 : 1e-30;
  std::vector<double> v;
  for (int64_t i = 0; i < n; ++i) {
    switch (rng.integer(0, 19)) {
      case 0:
        v.push_back(rng.uniform(-1, 1) * big);
        break;
      case 1:
        v.push_back(rng.uniform(-1, 1) * tiny);
        break;
      case 2:
        v.push_back(rng.integer(0, 1) ? INFINITY : -INFINITY);
        break;
      case 3:
        v.push_back(NAN);
        break;
      default:
        v.push_back(rng.uniform(-4, 4));
    }
  }
  return v;
}

constexpr DType kHalfTypes[] = {DType::kF16, DType::kBF16};

TEST(CpuHalfRows, ArithmeticRoundsBitForBitAsTheReference) {
  uint64_t seed = test_seed();
  std::printf("seed %llu\n", static_cast<unsigned long long>(seed));
  Rng rng(seed);
  const int64_t rows = 3, n = 1037;  // 64 blocks of 16 and a tail of 13 per row
  for (DType d : kHalfTypes) {
    Tensor a = make_tensor(operands(rng, rows * n, d), {rows, n}, d);
    Tensor b = make_tensor(operands(rng, rows * n, d), {rows, n}, d);
    Tensor scalar = make_tensor({rng.uniform(0.5, 2)}, {}, d);
    for (const char* op : {"add", "sub", "mul", "div"}) {
      std::string where = std::string(op) + " " + std::string(dtype_name(d));
      EXPECT_EQ(run_native(op, {a, b}, {}, Tensor::empty({rows, n}, d), {}), "") << where;
      // A 0-d operand: the broadcast lane of the same row loop.
      EXPECT_EQ(run_native(op, {a, scalar}, {}, Tensor::empty({rows, n}, d), {}), "")
          << where << " by a scalar";
    }
    // alpha = 2 is exact in f32, so alpha * b + a still rounds once.
    EXPECT_EQ(run_native("add", {a, b}, {{"alpha", 2.0}}, Tensor::empty({rows, n}, d), {}), "")
        << "add alpha=2 " << dtype_name(d);
  }
}

TEST(CpuHalfRows, SiluAndMulOnLongRows) {
  uint64_t seed = test_seed();
  std::printf("seed %llu\n", static_cast<unsigned long long>(seed));
  Rng rng(seed);
  for (DType d : {DType::kF32, DType::kF16, DType::kBF16}) {
    for (int64_t half : {int64_t{1000}, int64_t{16}, int64_t{7}}) {
      const int64_t rows = 5;
      std::vector<double> v;
      for (int64_t i = 0; i < rows * 2 * half; ++i) {
        // Gates out to where exp(-g) overflows (silu -> -0) or vanishes (silu -> g).
        double wide = rng.uniform(-120, 120);
        v.push_back(rng.integer(0, 9) == 0 ? wide : rng.uniform(-6, 6));
      }
      Tensor x = make_tensor(v, {rows, 2 * half}, d);
      EXPECT_EQ(run_native("silu_and_mul", {x}, {}, Tensor::empty({rows, half}, d), tolerance(d)),
                "")
          << dtype_name(d) << " d=" << half;
    }
  }
  // Infinite and NaN gates as torch's x / (1 + exp(-x)): -inf gives NaN, +inf gives +-inf.
  for (DType d : kHalfTypes) {
    Tensor x = make_tensor({-INFINITY, INFINITY, NAN, 100.0, -100.0, 0.0, 1.0, -1.0, 2.0, 3.0, 4.0,
                            5.0,       6.0,      7.0, 8.0,   9.0,    1.0, 1.0, 1.0,  1.0, 1.0, 1.0,
                            1.0,       1.0,      1.0, 1.0,   1.0,    1.0, 1.0, 1.0,  1.0, 1.0},
                           {1, 32}, d);
    EXPECT_EQ(run_native("silu_and_mul", {x}, {}, Tensor::empty({1, 16}, d), tolerance(d)), "")
        << dtype_name(d) << " special values";
  }
}

TEST(CpuHalfRows, RotaryWithTablesOfEachDtype) {
  uint64_t seed = test_seed();
  std::printf("seed %llu\n", static_cast<unsigned long long>(seed));
  Rng rng(seed);
  const int64_t tokens = 9, heads = 3, positions = 32;
  for (DType d : {DType::kF32, DType::kF16, DType::kBF16}) {
    // 128: 16-lane steps only; 80: 16-lane steps and an 8-lane one; 6: scalar.
    for (int64_t hd : {int64_t{128}, int64_t{80}, int64_t{6}}) {
      for (DType table : {d, DType::kF32}) {
        auto cs = rope_cache(positions, hd, 10000.0, {}, table);
        Tensor x = random_tensor(rng, {tokens, heads, hd}, d, Device());
        std::vector<double> pos;
        for (int64_t t = 0; t < tokens; ++t)
          pos.push_back(static_cast<double>(rng.integer(0, positions - 1)));
        Tensor p = make_tensor(pos, {tokens}, DType::kI64);
        for (const char* style : {"neox", "gptj"}) {
          EXPECT_EQ(run_native("rotary_embedding", {x, p, cs.first, cs.second}, {{"style", style}},
                               Tensor::empty({tokens, heads, hd}, d), tolerance(d)),
                    "")
              << dtype_name(d) << " table " << dtype_name(table) << " head_dim " << hd << " "
              << style;
        }
      }
    }
  }
}

}  // namespace
}  // namespace flagstone::ops::testing
