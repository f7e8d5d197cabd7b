// Every tuning variant of the cuda native row and gated-activation kernels (the candidates that
// FLAGSTONE_CUDA_VARIANT selects, set here through set_tuning_variant) against the float64
// reference: the bench's row lengths and odd ones (a tail of packs the threads do not divide
// evenly, rows a warp group does not fill), f32, f16 and bf16, outputs poisoned before each call.
// The parity suite covers the default kernels only; this keeps the others correct for when a
// window's timing makes one the default. Skips without a CUDA device.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "cuda/kernels.h"
#include "ops/ops_test_util.h"

namespace flagstone::ops::testing {
namespace {

struct Case {
  std::string op;
  std::vector<Tensor> inputs;  // on the cpu
  Attrs attrs;
  int64_t reduction = 1;
};

// Cases of `op` with rows of length n (for rotary: heads of 128 with n heads).
std::vector<Case> cases(const std::string& op, int64_t n, DType dt, Rng& rng) {
  const Device cpu;
  auto rand = [&](const Shape& s) { return random_tensor(rng, s, dt, cpu); };
  std::vector<Case> out;
  const int64_t rows = 5;
  if (op == "softmax") {
    Attrs a;
    a.set("dim", int64_t{-1});
    out.push_back({"softmax", {rand({rows, n})}, a, n});
    out.push_back({"log_softmax", {rand({rows, n})}, a, n});
  } else if (op == "rms_norm") {
    Attrs a;
    a.set("eps", 1e-6);
    out.push_back({"rms_norm", {rand({rows, n}), rand({n})}, a, n});
    out.push_back({"add_rms_norm", {rand({rows, n}), rand({rows, n}), rand({n})}, a, n});
    // 17 rows: the last block of a several-rows-per-block kernel is part empty.
    out.push_back({"rms_norm", {rand({17, n}), rand({n})}, a, n});
  } else if (op == "layer_norm") {
    Attrs a;
    a.set("eps", 1e-5).set("normalized_ndim", int64_t{1});
    // An offset row: the variance must not come from E[x^2] - E[x]^2.
    Tensor x = random_tensor(rng, {17, n}, dt, cpu, 40.0, 44.0);
    out.push_back({"layer_norm", {x, rand({n}), rand({n})}, a, n});
    out.push_back({"layer_norm", {rand({rows, n}), rand({n}), rand({n})}, a, n});
  } else if (op == "cross_entropy") {
    Tensor target = randint(0, n, {rows}, rng.integer(0, 1 << 30), 0, DType::kI64);
    Attrs mean;
    mean.set("reduction", "mean");
    out.push_back({"cross_entropy", {rand({rows, n}), target}, mean, rows * n});
    Attrs none;
    none.set("reduction", "none").set("label_smoothing", 0.1);
    out.push_back({"cross_entropy", {rand({rows, n}), target}, none, n});
  } else if (op == "rotary_embedding") {
    auto [cos, sin] = rope_cache(rows, 128, 10000.0, {}, dt);
    for (const char* style : {"neox", "gptj"}) {
      Attrs a;
      a.set("style", style);
      out.push_back({op, {rand({rows, n, 128}), arange(rows), cos, sin}, a, 1});
    }
  } else {
    out.push_back({op, {rand({rows, 2 * n})}, {}, 1});
  }
  return out;
}

TEST(CudaRowVariants, EveryVariantMatchesTheReference) {
  auto devices = runtime::devices_of("cuda");
  if (devices.empty()) GTEST_SKIP() << "no CUDA device";
  const Device& dev = devices[0];
  Rng rng(test_seed());
  struct Op {
    std::string name;
    int variants;             // 0..variants (the launchers name them), then -1: the default
    std::vector<int64_t> ns;  // the bench's length and odd ones
  };
  const std::vector<Op> ops_list = {
      {"softmax", 8, {32000, 1000, 24}},  {"rms_norm", 9, {4096, 4104, 2048, 8}},
      {"layer_norm", 9, {4096, 4104, 8}}, {"cross_entropy", 8, {32000, 1000, 24}},
      {"rotary_embedding", 6, {32, 6}},   {"silu_and_mul", 3, {11008, 4104}}};
  int checked = 0;
  for (DType dt : {DType::kBF16, DType::kF16, DType::kF32}) {
    for (const Op& op : ops_list) {
      for (int64_t n : op.ns) {
        for (const Case& c : cases(op.name, n, dt, rng)) {
          std::vector<Tensor> want = call_reference(c.op, c.inputs, c.attrs);
          std::vector<Tensor> inputs;
          for (const Tensor& t : c.inputs) inputs.push_back(t.to(dev));
          const Implementation* impl = nullptr;
          for (const Implementation* i : Registry::global().implementations(c.op, "cuda"))
            if (i->provider == Provider::kNative) impl = i;
          ASSERT_NE(impl, nullptr) << c.op;
          for (int v = -1; v <= op.variants; ++v) {
            cuda::set_tuning_variant(v);
            std::vector<Tensor> outs =
                allocate_outputs(Registry::global().schema(c.op), inputs, c.attrs, dev);
            for (Tensor& o : outs) poison(o);
            call_implementation(*impl, inputs, c.attrs, outs);
            for (size_t i = 0; i < want.size(); ++i) {
              std::string diff = compare(outs[i].to(Device()), want[i], tolerance(dt, c.reduction));
              EXPECT_TRUE(diff.empty()) << c.op << " " << dtype_name(dt) << " n " << n
                                        << " variant " << v << " output " << i << ": " << diff;
            }
            ++checked;
          }
        }
      }
    }
  }
  cuda::set_tuning_variant(-1);
  std::printf("cuda row variants: %d calls checked against the reference\n", checked);
}

}  // namespace
}  // namespace flagstone::ops::testing
