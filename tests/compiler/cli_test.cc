// `flagstone compile` end to end: a kernel stored as text is printed back after the passes,
// lowered for each target without a device, compiled for the cpu into the cache, and bad
// files fail with the file named.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "compiler/test_kernels.h"
#include "flagstone/compiler/kernel.h"

namespace flagstone::compiler::testing {
namespace {

struct Result {
  int rc = 0;
  std::string out;
};

// Runs the CLI with `args`; `env` is prepended (VAR=value ...).
Result run(const std::string& args, const std::string& env = "") {
  std::string cmd = env + std::string(FLAGSTONE_CLI) + " " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  Result r;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof(buf), p)) r.out.append(buf, n);
  r.rc = ::pclose(p);
  return r;
}

class CompileCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("flagstone-cli-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    for (const TestKernel& tk : all_test_kernels()) {
      if (tk.name != "softmax") continue;
      Kernel k(tk.name, tk.build, tk.configs);
      fn_ = k.build(tk.configs[0]);
      optimized_ = k.optimized(tk.configs[0]);
    }
    file_ = (dir_ / "softmax.ir").string();
    std::ofstream(file_) << ir::print(fn_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
  std::string file_;
  ir::Function fn_, optimized_;
};

TEST_F(CompileCli, PrintsTheOptimizedIr) {
  Result r = run("compile " + file_ + " --emit optimized");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(r.out, ir::print(optimized_));
  r = run("compile " + file_ + " --emit ir");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(r.out, ir::print(fn_));
}

TEST_F(CompileCli, EmitsSourceForEveryTargetWithoutADevice) {
  Result cuda = run("compile " + file_ + " --target cuda");
  ASSERT_EQ(cuda.rc, 0) << cuda.out;
  EXPECT_NE(cuda.out.find("extern \"C\" __global__"), std::string::npos) << cuda.out;
  Result ocl = run("compile " + file_ + " --target opencl --threads 64");
  ASSERT_EQ(ocl.rc, 0) << ocl.out;
  EXPECT_NE(ocl.out.find("reqd_work_group_size(64, 1, 1)"), std::string::npos) << ocl.out;
  Result cpu = run("compile " + file_ + " --target cpu");
  ASSERT_EQ(cpu.rc, 0) << cpu.out;
  EXPECT_NE(cpu.out.find("extern \"C\" void fs_kernel"), std::string::npos) << cpu.out;
}

TEST_F(CompileCli, CompilesIntoTheCacheThenFindsIt) {
  std::string env = "FLAGSTONE_CACHE_DIR=" + (dir_ / "cache").string() + " ";
  std::string cmd = "compile " + file_ + " --device cpu --json";
  Result first = run(cmd, env);
  ASSERT_EQ(first.rc, 0) << first.out;
  EXPECT_NE(first.out.find("\"compiled\": true"), std::string::npos) << first.out;
  Result second = run(cmd, env);
  ASSERT_EQ(second.rc, 0) << second.out;
  EXPECT_NE(second.out.find("\"compiled\": false"), std::string::npos) << second.out;
}

TEST_F(CompileCli, BadFilesNameTheFile) {
  Result missing = run("compile " + (dir_ / "missing.ir").string());
  EXPECT_NE(missing.rc, 0);
  EXPECT_NE(missing.out.find("missing.ir"), std::string::npos) << missing.out;
  std::string bad = (dir_ / "bad.ir").string();
  std::ofstream(bad) << "kernel @broken(\n";
  Result broken = run("compile " + bad);
  EXPECT_NE(broken.rc, 0);
  EXPECT_NE(broken.out.find("bad.ir"), std::string::npos) << broken.out;
  EXPECT_NE(broken.out.find("line"), std::string::npos) << broken.out;
}

}  // namespace
}  // namespace flagstone::compiler::testing
