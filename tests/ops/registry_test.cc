// Registry, policy and dispatch: provider order, per-op order, deny lists, strict mode, logged
// fallbacks (to another provider and to the cpu), out= checks, and the clear errors for wrong
// dtypes, shapes, devices, attributes and unknown ops.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <mutex>

#include "ops/ops_test_util.h"

namespace flagstone::ops {
namespace {

using ::testing::HasSubstr;

// Captures what the ops layer logs during one test.
class LogCapture {
 public:
  LogCapture() {
    reset_log_once();
    set_log_sink([this](LogLevel, std::string_view m) {
      std::lock_guard<std::mutex> lock(mutex_);
      lines_.emplace_back(m);
    });
  }
  ~LogCapture() { set_log_sink({}); }
  std::vector<std::string> lines() {
    std::lock_guard<std::mutex> lock(mutex_);
    return lines_;
  }

 private:
  std::mutex mutex_;
  std::vector<std::string> lines_;
};

// Restores the process-wide policy after a test changes it.
struct PolicyGuard {
  Policy saved = policy();
  ~PolicyGuard() { set_policy(saved); }
};

// A test-only op with several providers on the cpu whose behaviour the tests control: each
// implementation writes its provider's number, so the test sees which one ran.
void register_probe_op() {
  static std::once_flag once;
  std::call_once(once, [] {
    Registry& r = Registry::global();
    OpSchema s;
    s.name = "test_probe";
    s.family = "test";
    s.inputs = {"input"};
    s.outputs = {"out"};
    s.dtypes = {DType::kF32};
    s.infer = [](const std::vector<Tensor>& in, const Attrs&) {
      return std::vector<OutputSpec>{{in[0].shape(), DType::kF32}};
    };
    s.reference = [](KernelArgs& a) {
      a.outputs[0].copy_(testing::make_tensor(std::vector<double>(a.outputs[0].numel(), 0.0),
                                              a.outputs[0].shape(), DType::kF32));
    };
    r.add_schema(s);
    auto impl = [](Provider p, double value) {
      Implementation i;
      i.op = "test_probe";
      i.backend = "cpu";
      i.provider = p;
      i.dtypes = {DType::kF32};
      i.fn = [value](KernelArgs& a) {
        if (a.attrs.get_bool("refuse_vendor", false) && value == 1)
          throw_error(ErrorCategory::kUnsupported, "vendor library refused the shape");
        a.outputs[0].copy_(testing::make_tensor(std::vector<double>(a.outputs[0].numel(), value),
                                                a.outputs[0].shape(), DType::kF32));
      };
      return i;
    };
    r.add_implementation(impl(Provider::kVendor, 1));
    Implementation gen = impl(Provider::kGenerated, 2);
    gen.supports = [](const KernelArgs& a) {
      return a.inputs[0].is_contiguous() ? std::string() : std::string("needs contiguous input");
    };
    r.add_implementation(gen);
    r.add_implementation(impl(Provider::kNative, 3));
  });
}

double probe(const Attrs& attrs = {}, bool strided = false) {
  register_probe_op();
  Tensor x = testing::make_tensor({1, 2, 3, 4}, {2, 2}, DType::kF32);
  if (strided) x = x.t();
  return call("test_probe", {x}, attrs)[0].to_double_vector()[0];
}

TEST(OpsPolicy, DefaultOrderPrefersVendorThenGeneratedThenNative) {
  PolicyGuard guard;
  set_policy(Policy{});
  EXPECT_EQ(probe(), 1);
}

TEST(OpsPolicy, ProviderOrderPerOpOrderAndDenyList) {
  PolicyGuard guard;
  Policy p;
  p.providers = {Provider::kNative, Provider::kVendor};
  set_policy(p);
  EXPECT_EQ(probe(), 3);
  p.op_providers["test_probe"] = {Provider::kGenerated, Provider::kNative};
  set_policy(p);
  EXPECT_EQ(probe(), 2);
  p.deny_providers = {Provider::kGenerated};
  set_policy(p);
  EXPECT_EQ(probe(), 3);
  p.deny_op_providers = {{"test_probe", Provider::kNative}};
  set_policy(p);
  EXPECT_EQ(probe(), 0);  // only the reference is left
  Policy denied;
  denied.deny_ops = {"test_probe"};
  set_policy(denied);
  EXPECT_EQ(probe(), 0);
}

TEST(OpsPolicy, ParsesJsonAndEnvironment) {
  Policy p = Policy::from_json_text(
      R"({"providers": ["native", "vendor"], "ops": {"mm": ["vendor"]},
          "deny": ["softmax", "generated", "mm:native"], "strict": true})");
  EXPECT_EQ(p.providers, (std::vector<Provider>{Provider::kNative, Provider::kVendor}));
  EXPECT_EQ(p.order_for("mm"), (std::vector<Provider>{Provider::kVendor, Provider::kReference}));
  EXPECT_TRUE(p.deny_ops.count("softmax"));
  EXPECT_TRUE(p.deny_providers.count(Provider::kGenerated));
  EXPECT_TRUE(p.strict);
  EXPECT_TRUE(p.order_for("softmax").empty());  // denied and strict: nothing may run it

  setenv("FLAGSTONE_OPS_PROVIDERS", "generated,native", 1);
  setenv("FLAGSTONE_OPS_DENY", "rms_norm,vendor", 1);
  setenv("FLAGSTONE_OPS_ORDER", "mm=native,vendor;add=vendor", 1);
  setenv("FLAGSTONE_OPS_STRICT", "0", 1);
  Policy e = Policy::from_environment(p);
  unsetenv("FLAGSTONE_OPS_PROVIDERS");
  unsetenv("FLAGSTONE_OPS_DENY");
  unsetenv("FLAGSTONE_OPS_ORDER");
  unsetenv("FLAGSTONE_OPS_STRICT");
  EXPECT_EQ(e.providers, (std::vector<Provider>{Provider::kGenerated, Provider::kNative}));
  EXPECT_EQ(
      e.order_for("mm"),
      (std::vector<Provider>{Provider::kReference}));  // native denied by mm:native, vendor by deny
  EXPECT_TRUE(e.deny_ops.count("rms_norm"));
  EXPECT_FALSE(e.strict);
}

TEST(OpsPolicy, BadPolicyTextNamesTheField) {
  try {
    Policy::from_json_text(R"({"providers": ["fast"]})", "my.json");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kFormat);
    EXPECT_THAT(e.message(), HasSubstr("my.json"));
    EXPECT_THAT(e.message(), HasSubstr("fast"));
  }
  EXPECT_THROW(Policy::from_json_text(R"({"stric": true})"), Error);
  EXPECT_THROW(Policy::from_json_text("[1"), Error);
}

TEST(OpsDispatch, RefusalFallsBackToTheNextProviderAndLogsOnce) {
  PolicyGuard guard;
  set_policy(Policy{});
  LogCapture log;
  EXPECT_EQ(probe({{"refuse_vendor", true}}), 2);
  EXPECT_EQ(probe({{"refuse_vendor", true}}), 2);
  auto lines = log.lines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_THAT(lines[0], HasSubstr("test_probe"));
  EXPECT_THAT(lines[0], HasSubstr("vendor library refused"));
  // A supports() refusal (strided input) skips generated for native, also logged.
  EXPECT_EQ(probe({{"refuse_vendor", true}}, true), 3);
}

TEST(OpsDispatch, StrictModeTurnsFallbackIntoAnError) {
  PolicyGuard guard;
  Policy p;
  p.strict = true;
  set_policy(p);
  try {
    probe({{"refuse_vendor", true}});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kUnsupported);
    EXPECT_THAT(e.message(), HasSubstr("vendor library refused"));
  }
}

TEST(OpsDispatch, LibraryIsSilentWithoutASink) {
  // With no sink, a fallback must not reach stdout/stderr.
  set_log_sink({});
  reset_log_once();
  ::testing::internal::CaptureStderr();
  ::testing::internal::CaptureStdout();
  probe({{"refuse_vendor", true}});
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
  EXPECT_EQ(::testing::internal::GetCapturedStdout(), "");
}

TEST(OpsDispatch, DevicesWithoutImplementationsFallBackToTheCpu) {
  PolicyGuard guard;
  set_policy(Policy{});
  for (const Device& device : runtime::all_devices()) {
    if (device.is_cpu()) continue;
    Selection s = select("add", device, DType::kF32);
    if (s.cpu_fallback) {
      LogCapture log;
      Tensor a = testing::make_tensor({1, 2, 3}, {3}, DType::kF32, device);
      Tensor r = add(a, a);
      EXPECT_EQ(r.device(), device);
      EXPECT_EQ(r.to_double_vector(), (std::vector<double>{2, 4, 6}));
      add(a, a);
      auto lines = log.lines();
      EXPECT_EQ(std::count_if(lines.begin(), lines.end(),
                              [](const std::string& l) {
                                return l.find("running on the cpu") != std::string::npos;
                              }),
                1);
      Policy strict;
      strict.strict = true;
      set_policy(strict);
      try {
        add(a, a);
        FAIL() << "strict mode allowed a cpu fallback on " << device.spec();
      } catch (const Error& e) {
        EXPECT_THAT(e.message(), HasSubstr("'add'"));
        EXPECT_THAT(e.message(), HasSubstr(device.spec()));
        EXPECT_THAT(e.message(), HasSubstr("f32"));
      }
      set_policy(Policy{});
    }
  }
}

void expect_error(const std::function<void()>& f, std::vector<std::string> parts) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one mentioning " << parts[0];
  } catch (const Error& e) {
    for (const auto& p : parts) EXPECT_THAT(e.message(), HasSubstr(p));
  }
}

TEST(OpsErrors, WrongDtypeShapeDeviceAndAttributesAreNamed) {
  Tensor f = testing::make_tensor({1, 2, 3, 4, 5, 6}, {2, 3}, DType::kF32);
  Tensor i = testing::make_tensor({1, 2, 3, 4, 5, 6}, {2, 3}, DType::kI32);
  expect_error([&] { softmax(i); }, {"softmax", "i32[2, 3]", "f32"});
  expect_error([&] { mm(f, f); }, {"'mm'", "inner dims", "[2, 3]"});
  expect_error([&] { mm(f, cast(f, DType::kF16).t()); }, {"'mm'", "mat2", "f16"});
  expect_error(
      [&] {
        add(f, testing::make_tensor({1, 2}, {2}, DType::kF32));
      },
      {"'add'", "[2, 3]", "[2]", "broadcast"});
  expect_error([&] { sum(f, {2}); }, {"'sum'", "dim=2", "out of range"});
  expect_error([&] { call("softmax", {f}, {{"dim", "last"}}); }, {"softmax", "'dim'", "string"});
  expect_error([&] { call("softmx", {f}); }, {"unknown op 'softmx'", "softmax"});
  expect_error([&] { call("add", {f}); }, {"'add'", "takes 2"});
  expect_error([&] { bitwise_and(f, f); }, {"bitwise_and", "f32"});
  expect_error(
      [&] {
        embedding(testing::make_tensor({0, 7}, {2}, DType::kI64), f);
      },
      {"embedding", "index 7", "out of range"});
  expect_error([&] { topk(f, 5); }, {"topk", "k=5"});
  for (const Device& device : runtime::all_devices()) {
    if (device.is_cpu()) continue;
    Tensor other = f.to(device);
    expect_error([&] { add(f, other); }, {"'add'", "cpu:0", device.spec()});
  }
}

TEST(OpsErrors, OutVariantChecksShapeDtypeAndDevice) {
  Tensor a = testing::make_tensor({1, 2, 3, 4}, {2, 2}, DType::kF32);
  Tensor wrong_shape = Tensor::empty({4}, DType::kF32);
  expect_error([&] { add_out(wrong_shape, a, a); }, {"out tensor", "f32[4]", "[2, 2]"});
  Tensor wrong_dtype = Tensor::empty({2, 2}, DType::kF16);
  expect_error([&] { add_out(wrong_dtype, a, a); }, {"out tensor", "f16"});
  // A strided out= view is written in place.
  Tensor big = Tensor::empty({2, 4}, DType::kF32);
  testing::poison(big);
  Tensor view = big.slice(1, 0, 4, 2);
  add_out(view, a, a);
  EXPECT_EQ(view.to_double_vector(), (std::vector<double>{2, 4, 6, 8}));
}

TEST(OpsTypePromotion, MatchesTorchResultType) {
  EXPECT_EQ(promote_types(DType::kU8, DType::kI8), DType::kI16);
  EXPECT_EQ(promote_types(DType::kF16, DType::kBF16), DType::kF32);
  EXPECT_EQ(promote_types(DType::kI64, DType::kF16), DType::kF16);
  EXPECT_EQ(promote_types(DType::kBool, DType::kU8), DType::kU8);
  Tensor i32 = Tensor::empty({3}, DType::kI32), f16 = Tensor::empty({3}, DType::kF16);
  Tensor f64_0d = Tensor::empty({}, DType::kF64), i64_0d = Tensor::empty({}, DType::kI64);
  EXPECT_EQ(result_type({i32, f64_0d}), DType::kF64);
  EXPECT_EQ(result_type({f16, f64_0d}), DType::kF16);
  EXPECT_EQ(result_type({i32, i64_0d}), DType::kI32);
  EXPECT_EQ(scalar_like(i32, 2.5).dtype(), DType::kF32);
  EXPECT_EQ(scalar_like(i32, 2.0).dtype(), DType::kI32);
}

}  // namespace
}  // namespace flagstone::ops
