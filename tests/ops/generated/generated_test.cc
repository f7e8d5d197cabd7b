// Tests of the generated provider and the CLBlast GEMM beyond the parity harness: what is
// registered where, what dispatch picks on opencl, layouts beyond the kernels' rank, the
// compile cache across calls, long rows, and a GEMM larger than the parity shapes.
#include <gtest/gtest.h>

#include "flagstone/compiler/kernel.h"
#include "ops/ops_test_util.h"

namespace flagstone::ops::testing {
namespace {

std::vector<Device> opencl_devices() {
  std::vector<Device> out;
  for (const Device& d : runtime::all_devices())
    if (d.backend() == "opencl") out.push_back(d);
  return out;
}

const Implementation* find(std::string_view op, std::string_view backend, Provider p) {
  for (const Implementation* impl : Registry::global().implementations(op, backend))
    if (impl->provider == p) return impl;
  return nullptr;
}

TEST(GeneratedProvider, CoversTheElementwiseNormAndReductionFamiliesOnOpencl) {
  for (const char* op :
       {"exp",      "log1p",        "gelu",       "clamp",        "add",
        "where",    "lerp",         "cast",       "eq",           "atan2",
        "sum",      "argmax",       "logsumexp",  "norm",         "softmax",
        "rms_norm", "add_rms_norm", "layer_norm", "silu_and_mul", "rotary_embedding",
        "embedding"}) {
    const Implementation* impl = find(op, "opencl", Provider::kGenerated);
    ASSERT_NE(impl, nullptr) << op;
    EXPECT_TRUE(impl->has_dtype(DType::kF32) && impl->has_dtype(DType::kBF16)) << op;
    EXPECT_EQ(impl->name, std::string("opencl/generated/") + op);
  }
}

TEST(GeneratedProvider, NeverShadowsANativeCudaKernel) {
  for (const OpSchema* s : Registry::global().schemas()) {
    bool native = find(s->name, "cuda", Provider::kNative) != nullptr;
    bool generated = find(s->name, "cuda", Provider::kGenerated) != nullptr;
    EXPECT_FALSE(native && generated) << s->name << " has both on cuda";
  }
  // Families checked on a GPU serve cuda where no native kernel exists.
  for (const char* op : {"exp", "atan2", "where", "cast", "sum", "logsumexp"}) {
    if (find(op, "cuda", Provider::kNative) == nullptr) {
      EXPECT_NE(find(op, "cuda", Provider::kGenerated), nullptr) << op;
    }
  }
}

TEST(GeneratedProvider, DispatchPicksItOnOpencl) {
  for (const Device& dev : opencl_devices()) {
    Selection s = select("softmax", dev, DType::kF16);
    ASSERT_NE(s.impl, nullptr) << s.reason;
    EXPECT_EQ(s.impl->provider, Provider::kGenerated);
    EXPECT_FALSE(s.cpu_fallback);
    if (find("mm", "opencl", Provider::kVendor)) {  // built with CLBlast
      Selection g = select("mm", dev, DType::kF32);
      ASSERT_NE(g.impl, nullptr);
      EXPECT_EQ(g.impl->provider, Provider::kVendor) << g.impl->name;
    }
  }
}

// Five unmergeable dims exceed the kernels' three: operands are copied dense first, and the
// strided output view still receives every element.
TEST(GeneratedProvider, LayoutsBeyondThreeDimsAreCopiedDense) {
  Rng rng(test_seed());
  for (const Device& dev : opencl_devices()) {
    Tensor big = random_tensor(rng, {4, 4, 4, 4, 6}, DType::kF32, dev);
    Tensor x = big.slice(0, 0, 4, 2)
                   .slice(1, 0, 4, 2)
                   .slice(2, 0, 4, 2)
                   .slice(3, 0, 4, 2)
                   .slice(4, 0, 6, 2);
    Tensor y = random_tensor(rng, {2, 1, 2, 1, 3}, DType::kF32, dev);
    const Implementation* impl = find("mul", "opencl", Provider::kGenerated);
    ASSERT_NE(impl, nullptr);
    Tensor out_view = Tensor::empty({2, 2, 2, 2, 6}, DType::kF32, dev).slice(4, 0, 6, 2);
    poison(out_view);
    std::vector<Tensor> outs{out_view};
    call_implementation(*impl, {x, y}, {}, outs);
    EXPECT_EQ(
        compare(out_view.to(Device()), call_reference("mul", {x, y})[0], tolerance(DType::kF32)),
        "");
  }
}

TEST(GeneratedProvider, SecondCallCompilesNothing) {
  Rng rng(test_seed());
  for (const Device& dev : opencl_devices()) {
    Tensor a = random_tensor(rng, {3, 129}, DType::kBF16, dev);
    Tensor b = random_tensor(rng, {129}, DType::kBF16, dev);
    call("mul", {a, b});
    int64_t before = compiler::compiler_invocations();
    Tensor c = call("mul", {b, a})[0];
    EXPECT_EQ(compiler::compiler_invocations(), before);
    EXPECT_EQ(compare(c.to(Device()), call_reference("mul", {b, a})[0], tolerance(DType::kBF16)),
              "");
  }
}

// Rows of 512 or more take the one-row-per-program config, which the parity shapes never reach.
TEST(GeneratedProvider, LongRowsUseTheWideConfig) {
  Rng rng(test_seed());
  for (const Device& dev : opencl_devices()) {
    Tensor x = random_tensor(rng, {3, 2001}, DType::kF32, dev);
    for (const char* op : {"softmax", "sum"}) {
      const Implementation* impl = find(op, "opencl", Provider::kGenerated);
      ASSERT_NE(impl, nullptr);
      Attrs attrs = std::string(op) == "sum" ? Attrs{{"dims", std::vector<int64_t>{1}}} : Attrs{};
      std::vector<Tensor> outs;
      call_implementation(*impl, {x}, attrs, outs);
      EXPECT_EQ(compare(outs[0].to(Device()), call_reference(op, {x}, attrs)[0],
                        tolerance(DType::kF32, 2001)),
                "")
          << op;
    }
  }
}

// Rows of 256 or more elements with unit steps (silu_and_mul's halves, a row-broadcast operand)
// take the kernel with a program per row segment, and dense operands the flat one; the parity
// shapes are shorter, so these check both against the reference here, on opencl and, for the
// ops the generated provider serves there (no native kernel), on cuda.
TEST(GeneratedProvider, LongUnitStepRowsAndDenseCallsMatchTheReference) {
  Rng rng(test_seed());
  std::vector<Device> devices = opencl_devices();
  for (const Device& d : runtime::all_devices())
    if (d.backend() == "cuda") devices.push_back(d);
  for (const Device& dev : devices) {
    for (DType d : {DType::kF32, DType::kF16, DType::kBF16}) {
      struct Case {
        const char* op;
        std::vector<Tensor> inputs;
      };
      const std::vector<Case> cases = {
          {"silu_and_mul", {random_tensor(rng, {3, 2 * 1100}, d, dev)}},
          {"add", {random_tensor(rng, {4, 300}, d, dev), random_tensor(rng, {300}, d, dev)}},
          {"mul", {random_tensor(rng, {5, 2051}, d, dev), random_tensor(rng, {5, 2051}, d, dev)}},
          {"atan2", {random_tensor(rng, {4, 300}, d, dev), random_tensor(rng, {300}, d, dev)}},
          {"atan2", {random_tensor(rng, {2, 999}, d, dev), random_tensor(rng, {2, 999}, d, dev)}}};
      for (const Case& c : cases) {
        const Implementation* impl = find(c.op, dev.backend(), Provider::kGenerated);
        if (dev.backend() == "opencl") {
          ASSERT_NE(impl, nullptr) << c.op;
        }
        if (!impl) continue;
        Shape shape = c.inputs[0].shape();
        if (std::string(c.op) == "silu_and_mul") shape.back() /= 2;
        Tensor out = Tensor::empty(shape, d, dev);
        poison(out);
        std::vector<Tensor> outs{out};
        call_implementation(*impl, c.inputs, {}, outs);
        EXPECT_EQ(compare(out.to(Device()), call_reference(c.op, c.inputs)[0], tolerance(d)), "")
            << c.op << " " << dtype_name(d);
      }
    }
  }
}

TEST(ClblastGemm, LargerThanTheParityShapes) {
  const Implementation* impl = find("linear", "opencl", Provider::kVendor);
  if (!impl) GTEST_SKIP() << "built without CLBlast";
  Rng rng(test_seed());
  for (const Device& dev : opencl_devices()) {
    for (DType d : {DType::kF32, DType::kBF16}) {
      Tensor x = random_tensor(rng, {2, 67, 300}, d, dev, -1, 1);
      Tensor w = random_tensor(rng, {129, 300}, d, dev, -1, 1);
      Tensor bias = random_tensor(rng, {129}, d, dev, -1, 1);
      std::vector<Tensor> outs;
      call_implementation(*impl, {x, w, bias}, {}, outs);
      EXPECT_EQ(compare(outs[0].to(Device()), call_reference("linear", {x, w, bias})[0],
                        tolerance(d, 300)),
                "")
          << dtype_name(d);
    }
  }
}

}  // namespace
}  // namespace flagstone::ops::testing
