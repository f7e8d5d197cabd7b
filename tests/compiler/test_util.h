// Helpers of the compiler tests: devices with a compiler target, random inputs and tolerant
// comparison against a plain C++ reference.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "flagstone/base/error.h"
#include "flagstone/compiler/target.h"
#include "flagstone/runtime/device.h"

namespace flagstone::compiler::testing {

// Every device of this machine whose backend has a compiler target.
inline std::vector<runtime::Device> target_devices() {
  std::vector<runtime::Device> out;
  for (const runtime::Device& d : runtime::all_devices()) {
    try {
      target_for(d.backend());
      out.push_back(d);
    } catch (const Error&) {
    }
  }
  return out;
}

inline std::mt19937& rng() {
  static std::mt19937 gen = [] {
    unsigned seed = std::random_device{}();
    std::printf("compiler tests: random seed %u\n", seed);
    return std::mt19937(seed);
  }();
  return gen;
}

inline std::vector<float> random_floats(size_t n, float lo, float hi) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng());
  return v;
}

inline std::vector<int32_t> random_ints(size_t n, int32_t lo, int32_t hi) {
  std::uniform_int_distribution<int32_t> dist(lo, hi);
  std::vector<int32_t> v(n);
  for (int32_t& x : v) x = dist(rng());
  return v;
}

inline int64_t random_size(int64_t lo, int64_t hi) {
  return std::uniform_int_distribution<int64_t>(lo, hi)(rng());
}

// |got - want| <= atol + rtol * |want| for every element; reports the first few misses.
template <typename A, typename B>
void expect_close(const std::vector<A>& got, const std::vector<B>& want, double rtol, double atol,
                  const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  int misses = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    double g = static_cast<double>(got[i]);
    double w = static_cast<double>(want[i]);
    bool ok = (std::isnan(w) && std::isnan(g)) || std::fabs(g - w) <= atol + rtol * std::fabs(w);
    if (!ok && misses++ < 5)
      ADD_FAILURE() << what << ": element " << i << " is " << g << ", expected " << w;
  }
  EXPECT_EQ(misses, 0) << what << ": " << misses << " of " << got.size() << " elements differ";
}

}  // namespace flagstone::compiler::testing
