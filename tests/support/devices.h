// Test helpers for suites parameterized over every device this build finds: readable test
// names ("cuda_0") and printing of Device parameters.
#pragma once

#include <gtest/gtest.h>

#include <cctype>
#include <ostream>
#include <string>

#include "flagstone/runtime/device.h"

namespace flagstone::runtime {

inline void PrintTo(const Device& device, std::ostream* out) {
  *out << device.spec();
}

inline std::string device_test_name(const ::testing::TestParamInfo<Device>& info) {
  std::string name = info.param.spec();
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

}  // namespace flagstone::runtime

// Instantiates a TEST_P suite once per device: FLAGSTONE_INSTANTIATE_ON_ALL_DEVICES(MySuite).
#define FLAGSTONE_INSTANTIATE_ON_ALL_DEVICES(suite)                                  \
  INSTANTIATE_TEST_SUITE_P(AllDevices, suite,                                        \
                           ::testing::ValuesIn(::flagstone::runtime::all_devices()), \
                           ::flagstone::runtime::device_test_name)
