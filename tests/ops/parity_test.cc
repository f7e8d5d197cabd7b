// Parity of every implementation against the float64 reference, per op family: for each device
// found, each op, each dtype and each registered implementation on that device, fresh random
// inputs (odd shapes, broadcast, strided) go through the implementation with poisoned outputs
// and through the reference. Devices without an implementation run the dispatched cpu fallback,
// which is counted and reported as such.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <map>

#include "ops/parity_cases.h"

namespace flagstone::ops::testing {
namespace {

struct Tally {
  int passed = 0, failed = 0, refused = 0;
};

std::vector<Tensor> poisoned_outputs(const OpSchema& schema, const ParityCase& c,
                                     const Device& device, bool strided) {
  std::vector<Tensor> outs;
  if (schema.dynamic_outputs) return outs;
  Attrs attrs = c.attrs;
  for (const Tensor& t : allocate_outputs(schema, c.inputs, attrs, device)) {
    Tensor o = t;
    if (strided && t.dim() > 0) {
      Shape wide = t.shape();
      wide.back() *= 2;
      o = Tensor::empty(wide, t.dtype(), device).slice(t.dim() - 1, 0, wide.back(), 2);
    }
    poison(o);
    outs.push_back(o);
  }
  return outs;
}

std::string check(const std::vector<Tensor>& got, const std::vector<Tensor>& want, DType dtype,
                  int64_t k) {
  if (got.size() != want.size()) return "output count differs";
  for (size_t i = 0; i < got.size(); ++i) {
    Tolerance tol = tolerance(is_floating(want[i].dtype()) ? want[i].dtype() : dtype, k);
    if (!is_floating(want[i].dtype())) tol = {0, 0};
    std::string d = compare(got[i].to(Device()), want[i], tol);
    if (!d.empty()) return "output " + std::to_string(i) + ": " + d;
  }
  return "";
}

class ParityTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ParityTest, EveryImplementationMatchesTheReference) {
  const std::string family = GetParam();
  uint64_t seed = test_seed();
  std::printf("parity %s: seed %llu (FLAGSTONE_TEST_SEED replays it)\n", family.c_str(),
              static_cast<unsigned long long>(seed));
  Rng rng(seed);
  const auto& gens = parity_generators();
  std::map<std::string, Tally> tallies;  // "device provider"
  int ops_checked = 0;
  for (const OpSchema* schema : Registry::global().schemas()) {
    if (schema->family != family) continue;
    auto impls = Registry::global().implementations(schema->name);
    bool has_fast = std::any_of(impls.begin(), impls.end(), [](const Implementation* i) {
      return i->provider != Provider::kReference;
    });
    auto gen = gens.find(schema->name);
    if (gen == gens.end()) {
      EXPECT_FALSE(has_fast) << "op '" << schema->name
                             << "' has implementations but no parity cases";
      continue;
    }
    ++ops_checked;
    for (const Device& device : runtime::all_devices()) {
      for (DType dtype : schema->dtypes) {
        auto cases = gen->second(rng, dtype, device);
        for (size_t ci = 0; ci < cases.size(); ++ci) {
          const ParityCase& c = cases[ci];
          std::string where = schema->name + " " + std::string(dtype_name(dtype)) + " on " +
                              device.spec() + " [" + c.label + "] " + c.attrs.to_string();
          std::vector<Tensor> want;
          try {
            want = call_reference(schema->name, c.inputs, c.attrs);
          } catch (const Error& e) {
            ADD_FAILURE() << where << ": reference failed: " << e.what();
            continue;
          }
          bool ran = false;
          for (const Implementation* impl :
               Registry::global().implementations(schema->name, device.backend())) {
            if (impl->provider == Provider::kReference || !impl->has_dtype(dtype)) continue;
            for (bool strided_out : {false, true}) {
              if (strided_out && (ci != 0 || schema->dynamic_outputs)) continue;
              Tally& t = tallies[device.spec() + " " + std::string(provider_name(impl->provider))];
              std::vector<Tensor> outs = poisoned_outputs(*schema, c, device, strided_out);
              try {
                call_implementation(*impl, c.inputs, c.attrs, outs);
              } catch (const Error& e) {
                if (e.category() == ErrorCategory::kUnsupported) {
                  ++t.refused;
                  continue;
                }
                ADD_FAILURE() << where << " " << impl->name << ": " << e.what();
                ++t.failed;
                continue;
              }
              std::string diff = check(outs, want, dtype, c.reduction_length);
              EXPECT_TRUE(diff.empty()) << where << " " << impl->name
                                        << (strided_out ? " (strided out)" : "") << ": " << diff;
              ++(diff.empty() ? t.passed : t.failed);
              ran = true;
            }
          }
          if (!ran && !device.is_cpu()) {
            // No implementation here: the dispatched call falls back to the cpu.
            Tally& t = tallies[device.spec() + " cpu-fallback"];
            try {
              std::string diff =
                  check(call(schema->name, c.inputs, c.attrs), want, dtype, c.reduction_length);
              EXPECT_TRUE(diff.empty()) << where << " (cpu fallback): " << diff;
              ++(diff.empty() ? t.passed : t.failed);
            } catch (const Error& e) {
              ADD_FAILURE() << where << " (cpu fallback): " << e.what();
              ++t.failed;
            }
          }
        }
      }
    }
  }
  for (const auto& [key, t] : tallies)
    std::printf("parity %s %s: %d passed, %d failed, %d refused (served by the next provider)\n",
                family.c_str(), key.c_str(), t.passed, t.failed, t.refused);
  if (const char* path = std::getenv("FLAGSTONE_OPS_PARITY_REPORT")) {
    std::ofstream out(path, std::ios::app);
    for (const auto& [key, t] : tallies)
      out << family << " " << key << " " << t.passed << " " << t.failed << " " << t.refused << "\n";
  }
  std::printf("parity %s: %d ops with cases\n", family.c_str(), ops_checked);
}

INSTANTIATE_TEST_SUITE_P(Families, ParityTest,
                         ::testing::Values("unary", "binary", "reduction", "scan", "norm", "llm",
                                           "attention", "sort", "sample", "linalg", "movement",
                                           "factory"));

}  // namespace
}  // namespace flagstone::ops::testing
