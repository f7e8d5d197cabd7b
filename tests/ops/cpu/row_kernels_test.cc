// The cpu row kernels on rows long enough to take their chunked paths (src/ops/cpu/
// softmax_rows.h): softmax, log_softmax, cross_entropy, layer_norm and rms_norm against the
// float64 reference, with rows built to hit each branch of the online max/sum merge.
//
// The parity suite's rows are a few hundred elements, one chunk. Here rows span several 8 KiB
// chunks with a partial last one, the running max rises chunk after chunk (by more than the lead
// the one-read sweep allows, too), whole chunks are -inf (masked), and outputs start at odd
// addresses. ctest also runs this binary with the AVX2 rows (FLAGSTONE_CPU_ISA=avx2, which an
// AVX-512 machine otherwise skips), the portable loops (FLAGSTONE_CPU_ISA=baseline) and with every
// output streamed (FLAGSTONE_CPU_STREAM_BYTES=0), so each path is checked on every machine.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>

#include "ops/ops_test_util.h"

namespace flagstone::ops::testing {
namespace {

const Implementation& native(const std::string& op) {
  for (const Implementation* impl : Registry::global().implementations(op, "cpu"))
    if (impl->provider == Provider::kNative) return *impl;
  throw_error(ErrorCategory::kNotFound, "no native cpu implementation of ", op);
}

// Row kinds; each exercises one branch of the chunk merge.
enum class RowKind { kUniform, kRising, kMaskedPrefix, kLateSpike, kWideRange, kLowStart, kJump };
constexpr RowKind kKinds[] = {RowKind::kUniform,   RowKind::kRising,    RowKind::kMaskedPrefix,
                              RowKind::kLateSpike, RowKind::kWideRange, RowKind::kLowStart,
                              RowKind::kJump};

std::vector<double> make_rows(Rng& rng, int64_t n) {
  std::vector<double> v;
  for (RowKind kind : kKinds) {
    for (int64_t i = 0; i < n; ++i) {
      double u = rng.uniform(-3, 3), f = static_cast<double>(i) / static_cast<double>(n);
      switch (kind) {
        case RowKind::kUniform:
          v.push_back(u);
          break;
        case RowKind::kRising:  // a new max in every chunk: the running sum is rescaled each time
          v.push_back(-20 + 40 * f + 0.1 * u);
          break;
        case RowKind::kMaskedPrefix:  // leading chunks entirely -inf, then finite values
          v.push_back(f < 0.45 ? -INFINITY : u);
          break;
        case RowKind::kLateSpike:  // the max sits in the last, partial chunk
          v.push_back(i == n - 1 ? 30.0 : u);
          break;
        case RowKind::kWideRange:  // most exponentials underflow below exp(-87)
          v.push_back(rng.uniform(-200, 40));
          break;
        case RowKind::kLowStart:  // the first elements far below the rest of the first chunk
          v.push_back(i < 16 ? -100 + u : u);
          break;
        case RowKind::kJump:  // a max 150 above the earlier chunks: their exponentials start over
          v.push_back(f < 0.6 ? u : 150 + u);
          break;
      }
    }
  }
  return v;
}

// A dense [rows, n] tensor whose data starts `skew` elements into its buffer (odd addresses for
// the streamed stores' aligned middle).
Tensor skewed(const std::vector<double>& values, int64_t rows, int64_t n, DType dtype,
              int64_t skew) {
  Tensor flat = Tensor::empty({rows * n + skew}, dtype);
  Tensor t = flat.slice(0, skew, rows * n + skew).view({rows, n});
  t.copy_(make_tensor(values, {rows, n}, dtype));
  return t;
}

void expect_matches(const std::string& op, const std::vector<Tensor>& in, const Attrs& attrs,
                    Tensor out, int64_t reduction, std::string_view where) {
  poison(out);
  std::vector<Tensor> outs{out};
  call_implementation(native(op), in, attrs, outs);
  auto want = call_reference(op, in, attrs);
  std::string diff = compare(outs[0], want[0], tolerance(out.dtype(), reduction));
  EXPECT_TRUE(diff.empty()) << op << " " << where << ": " << diff;
}

constexpr DType kDtypes[] = {DType::kF32, DType::kF16, DType::kBF16};
constexpr int64_t kRowsPerKind = static_cast<int64_t>(std::size(kKinds));

TEST(CpuRowKernels, SoftmaxAndLogSoftmaxOverManyChunks) {
  uint64_t seed = test_seed();
  std::printf("seed %llu\n", static_cast<unsigned long long>(seed));
  Rng rng(seed);
  // 20011: several chunks of every dtype, a partial last one, and a tail past the 8 lanes.
  for (int64_t n : {int64_t{20011}, int64_t{4096}, int64_t{9}}) {
    for (DType d : kDtypes) {
      auto values = make_rows(rng, n);
      for (int64_t skew : {0, 1, 3}) {
        Tensor x = skewed(values, kRowsPerKind, n, d, skew);
        for (const char* op : {"softmax", "log_softmax"}) {
          // The output's offset differs from the input's, so the two are misaligned apart.
          int64_t os = 2 * skew + 1;
          Tensor out = Tensor::empty({kRowsPerKind * n + os}, d)
                           .slice(0, os, kRowsPerKind * n + os)
                           .view({kRowsPerKind, n});
          expect_matches(op, {x}, {{"dim", -1}}, out, n,
                         std::string(dtype_name(d)) + " n=" + std::to_string(n) +
                             " skew=" + std::to_string(skew));
        }
      }
    }
  }
}

// Many rows per pool task, so that a thread runs one row's output pass between the chunks of
// the next row's first pass (softmax): rows of every kind follow each other, and each row's
// output starts at another alignment (n is odd).
TEST(CpuRowKernels, SoftmaxRowsInterleavedWithinATask) {
  uint64_t seed = test_seed();
  std::printf("seed %llu\n", static_cast<unsigned long long>(seed));
  Rng rng(seed);
  const int64_t n = 9001, copies = 5, rows = copies * kRowsPerKind;
  for (DType d : kDtypes) {
    std::vector<double> values;
    for (int64_t c = 0; c < copies; ++c) {
      auto part = make_rows(rng, n);
      values.insert(values.end(), part.begin(), part.end());
    }
    Tensor x = skewed(values, rows, n, d, 1);
    expect_matches("softmax", {x}, {{"dim", -1}}, Tensor::empty({rows, n}, d), n,
                   std::string(dtype_name(d)) + " interleaved rows");
  }
}

// f16/bf16 rows shift their exponentials by whole multiples of ln2 while the row's values stay
// within 2^19; rows beyond (bf16 and f32 logits near 1e6) and rows holding +inf take the f32
// rows' path, also when they sit between ordinary rows of one task.
TEST(CpuRowKernels, LogitsBeyondTheLn2ShiftRange) {
  uint64_t seed = test_seed();
  std::printf("seed %llu\n", static_cast<unsigned long long>(seed));
  Rng rng(seed);
  const int64_t n = 9001, rows = 12;
  for (DType d : {DType::kF32, DType::kBF16, DType::kF16}) {
    const double big = d == DType::kF16 ? 6e4 : 1e6;
    std::vector<double> values;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t i = 0; i < n; ++i) {
        double u = rng.uniform(-3, 3);
        switch (r % 4) {
          case 0:
            values.push_back(u);
            break;
          case 1:
            values.push_back(big + 2000 * u);
            break;  // beyond the range
          case 2:
            values.push_back(i == n / 3 ? INFINITY : u);
            break;
          default:
            values.push_back(-big + 2000 * u);
            break;
        }
      }
    Tensor x = make_tensor(values, {rows, n}, d);
    expect_matches("softmax", {x}, {{"dim", -1}}, Tensor::empty({rows, n}, d), n,
                   std::string(dtype_name(d)) + " big logits");
    std::vector<double> t;
    for (int64_t r = 0; r < rows; ++r) t.push_back(static_cast<double>(rng.integer(0, n - 1)));
    Tensor target = make_tensor(t, {rows}, DType::kI64);
    expect_matches("cross_entropy", {x, target}, {{"reduction", std::string("none")}},
                   Tensor::empty({rows}, d), n, std::string(dtype_name(d)) + " big logits");
  }
}

// Row 0 is all -inf; row 1 is finite; row 2 holds a NaN inside its leading -inf chunks, which
// the chunk merge skips for their max but must still let poison the row (torch gives NaN rows).
TEST(CpuRowKernels, MaskedAndNaNRowsAreNaNAsInTorch) {
  for (DType d : kDtypes) {
    int64_t n = 20000;
    std::vector<double> values(static_cast<size_t>(3 * n), -INFINITY);
    for (int64_t i = n; i < 2 * n; ++i) values[static_cast<size_t>(i)] = std::sin(i);
    for (int64_t i = 2 * n + n / 2; i < 3 * n; ++i) values[static_cast<size_t>(i)] = std::cos(i);
    values[static_cast<size_t>(2 * n + 5)] = NAN;
    Tensor x = make_tensor(values, {3, n}, d);
    for (const char* op : {"softmax", "log_softmax"}) {
      Tensor out = Tensor::empty({3, n}, d);
      expect_matches(op, {x}, {{"dim", -1}}, out, n, dtype_name(d));
      EXPECT_TRUE(std::isnan(out.select(0, 0).to_double_vector()[0])) << op;
      EXPECT_TRUE(std::isnan(out.select(0, 2).to_double_vector()[n - 1])) << op;
    }
  }
}

// A NaN whose payload has low mantissa bits set (not the default NaN that arithmetic makes)
// must still poison its row: the vector exp must not turn it into a number.
TEST(CpuRowKernels, NaNWithPayloadPoisonsTheRow) {
  int64_t n = 20000;
  std::vector<float> host(static_cast<size_t>(2 * n));
  for (int64_t i = 0; i < 2 * n; ++i) host[static_cast<size_t>(i)] = std::sin(0.01f * i);
  uint32_t bits = 0x7fc001ffu;
  std::memcpy(&host[static_cast<size_t>(n + 12345)], &bits, 4);
  Tensor x = Tensor::from_vector(host, {2, n});
  for (const char* op : {"softmax", "log_softmax"})
    expect_matches(op, {x}, {{"dim", -1}}, Tensor::empty({2, n}, DType::kF32), n, "payload");
  Tensor target = make_tensor({3, 7}, {2}, DType::kI64);
  expect_matches("cross_entropy", {x, target}, {{"reduction", std::string("none")}},
                 Tensor::empty({2}, DType::kF32), n, "payload");
}

TEST(CpuRowKernels, CrossEntropyOverManyChunks) {
  uint64_t seed = test_seed();
  std::printf("seed %llu\n", static_cast<unsigned long long>(seed));
  Rng rng(seed);
  int64_t n = 20011;
  for (DType d : kDtypes) {
    // The masked prefix becomes -60000 (finite in every dtype): with smoothing, every
    // log-probability counts and a -inf logit makes the loss infinite (as in torch).
    auto values = make_rows(rng, n);
    for (auto& v : values) v = std::isinf(v) ? -60000.0 : v;
    Tensor x = skewed(values, kRowsPerKind, n, d, 1);
    // Targets in the second half, past the masked prefix.
    std::vector<double> t;
    for (int64_t r = 0; r < kRowsPerKind; ++r)
      t.push_back(static_cast<double>(rng.integer(n / 2, n - 1)));
    Tensor target = make_tensor(t, {kRowsPerKind}, DType::kI64);
    for (double ls : {0.0, 0.1}) {
      Attrs attrs{{"reduction", std::string("none")}, {"label_smoothing", ls}};
      if (ls > 0) {
        expect_matches("cross_entropy", {x, target}, attrs, Tensor::empty({kRowsPerKind}, d), n,
                       std::string(dtype_name(d)) + " smoothing");
        continue;
      }
      expect_matches("cross_entropy", {x, target}, attrs, Tensor::empty({kRowsPerKind}, d), n,
                     dtype_name(d));
      expect_matches("cross_entropy", {x, target}, {{"reduction", std::string("sum")}},
                     Tensor::empty({}, d), n * kRowsPerKind, std::string(dtype_name(d)) + " sum");
    }
  }
}

// A masked (-inf) logit leaves the unsmoothed loss finite, as in torch: log(sum of the other
// exponentials) minus the target's logit, worked out here by hand.
TEST(CpuRowKernels, CrossEntropyWithAMaskedLogitIsFinite) {
  const double want = std::log(std::exp(0.0) + std::exp(1.0) + std::exp(0.5)) - 1.0;
  Tensor x = make_tensor({0.0, -INFINITY, 1.0, 0.5}, {1, 4}, DType::kF32);
  Tensor target = make_tensor({2}, {1}, DType::kI64);
  Attrs attrs{{"reduction", std::string("none")}};
  auto ref = call_reference("cross_entropy", {x, target}, attrs);
  EXPECT_NEAR(ref[0].to_vector<float>()[0], want, 1e-6);
  expect_matches("cross_entropy", {x, target}, attrs, Tensor::empty({1}, DType::kF32), 4,
                 "masked logit");
}

TEST(CpuRowKernels, NormsWithOddAddresses) {
  uint64_t seed = test_seed();
  std::printf("seed %llu\n", static_cast<unsigned long long>(seed));
  Rng rng(seed);
  // 48 rows: pool tasks of several rows, whose 16-bit w and b are widened once per task (and
  // again as the odd row length moves each row's stream alignment).
  int64_t rows = 48, n = 4099;
  for (DType d : kDtypes) {
    std::vector<double> values(static_cast<size_t>(rows * n));
    for (auto& v : values) v = rng.uniform(-3, 3) + 5;  // a mean far from 0 for the variance
    Tensor x = skewed(values, rows, n, d, 1);
    Tensor w = random_tensor(rng, {n}, d, Device()), b = random_tensor(rng, {n}, d, Device());
    for (int64_t skew : {0, 1}) {
      auto out = [&] {
        return Tensor::empty({rows * n + skew}, d).slice(0, skew, rows * n + skew).view({rows, n});
      };
      std::string where = std::string(dtype_name(d)) + " skew=" + std::to_string(skew);
      expect_matches("layer_norm", {x, w, b}, {{"eps", 1e-5}}, out(), n, where);
      expect_matches("rms_norm", {x, w}, {{"eps", 1e-6}}, out(), n, where);
    }
  }
}

}  // namespace
}  // namespace flagstone::ops::testing
