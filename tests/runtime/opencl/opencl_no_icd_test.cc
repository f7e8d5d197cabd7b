// With no OpenCL driver installed the backend must offer zero devices and say why in one line,
// without aborting or printing. An empty OCL_ICD_VENDORS directory hides every ICD.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "backends.h"
#include "flagstone/base/error.h"

namespace flagstone::runtime {
namespace {

TEST(OpenClWithoutIcd, HasNoDevicesAndOneLineReason) {
  // Must run before this process's first OpenCL call: the loader reads the variable once.
  auto empty = std::filesystem::temp_directory_path() / "flagstone-no-icd";
  std::filesystem::create_directories(empty);
  ASSERT_EQ(setenv("OCL_ICD_VENDORS", empty.c_str(), 1), 0);
  ASSERT_EQ(unsetenv("OPENCL_VENDOR_PATH"), 0);

  testing::internal::CaptureStdout();
  testing::internal::CaptureStderr();
  std::unique_ptr<Backend> backend = create_opencl_backend();
  std::string out = testing::internal::GetCapturedStdout();
  std::string err = testing::internal::GetCapturedStderr();

  EXPECT_EQ(backend->name(), "opencl");
  EXPECT_EQ(backend->device_count(), 0);
  std::string status = backend->status();
  EXPECT_NE(status.find("no OpenCL platform"), std::string::npos) << status;
  EXPECT_EQ(status.find('\n'), std::string::npos) << status;
  EXPECT_TRUE(out.empty()) << out;
  EXPECT_TRUE(err.empty()) << err;
  try {
    backend->device(0);
    FAIL() << "device 0 of a backend without devices";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kNotFound);
    EXPECT_NE(std::string(e.what()).find("opencl:0"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace flagstone::runtime
