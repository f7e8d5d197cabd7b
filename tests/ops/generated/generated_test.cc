// Tests of the generated provider and the CLBlast GEMM beyond the parity harness: what is
// registered where, what dispatch picks on opencl, the clean refusal of layouts the kernels do
// not take (dispatch falls back and the result still matches the reference), the compile
// cache across calls, and a GEMM larger than the parity shapes.
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

TEST(GeneratedProvider, FillsCudaOnlyWhereNoNativeKernelExists) {
  for (const OpSchema* s : Registry::global().schemas()) {
    bool native = find(s->name, "cuda", Provider::kNative) != nullptr;
    bool generated = find(s->name, "cuda", Provider::kGenerated) != nullptr;
    EXPECT_FALSE(native && generated) << s->name << " has both on cuda";
    if (find(s->name, "opencl", Provider::kGenerated) && !native) {
      EXPECT_TRUE(generated) << s->name;
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

TEST(GeneratedProvider, LayoutsBeyondFourDimsAreRefusedAndStillComputed) {
  Rng rng(test_seed());
  for (const Device& dev : opencl_devices()) {
    // Every other element of every dim: five dims that cannot merge.
    Tensor big = random_tensor(rng, {4, 4, 4, 4, 6}, DType::kF32, dev);
    Tensor x = big.slice(0, 0, 4, 2)
                   .slice(1, 0, 4, 2)
                   .slice(2, 0, 4, 2)
                   .slice(3, 0, 4, 2)
                   .slice(4, 0, 6, 2);
    const Implementation* impl = find("exp", "opencl", Provider::kGenerated);
    ASSERT_NE(impl, nullptr);
    Tensor out_view = Tensor::empty({2, 2, 2, 2, 6}, DType::kF32, dev).slice(4, 0, 6, 2);
    std::vector<Tensor> strided_out{out_view};
    try {
      call_implementation(*impl, {x}, {}, strided_out);
      FAIL() << "a 5-d unmergeable layout should be refused";
    } catch (const Error& e) {
      EXPECT_EQ(e.category(), ErrorCategory::kUnsupported) << e.what();
      EXPECT_NE(std::string(e.what()).find("exp"), std::string::npos) << e.what();
    }
    // Dispatch takes the next provider (the cpu) and the result is right.
    call_out("exp", {x}, {}, strided_out);
    EXPECT_EQ(compare(out_view.to(Device()), call_reference("exp", {x})[0], tolerance(DType::kF32)),
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
