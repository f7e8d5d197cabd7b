// The compile cache across processes (a second process must not run any toolchain) and the
// autotuner's on-disk choices.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "compiler/test_util.h"
#include "flagstone/compiler/kernel.h"
#include "flagstone/runtime/tensor.h"

namespace flagstone::compiler::testing {
namespace {

namespace fs = std::filesystem;

std::string make_temp_dir() {
  std::string tmpl = (fs::temp_directory_path() / "fs-cache-test-XXXXXX").string();
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  EXPECT_NE(::mkdtemp(buf.data()), nullptr);
  return buf.data();
}

std::string run(const std::string& command) {
  std::string out;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) return "popen failed";
  char chunk[256];
  while (size_t n = std::fread(chunk, 1, sizeof(chunk), pipe)) out.append(chunk, n);
  int status = ::pclose(pipe);
  if (status != 0) out += " (exit status " + std::to_string(status) + ")";
  return out;
}

TEST(CompilerCache, SecondProcessLaunchesWithoutCompiling) {
  std::string dir = make_temp_dir();
  std::string cmd = "FLAGSTONE_CACHE_DIR='" + dir + "' '" FLAGSTONE_CACHE_HELPER "' 2>&1";
  std::string first = run(cmd);
  int devices = static_cast<int>(target_devices().size());
  std::string expected_first =
      "devices=" + std::to_string(devices) + " invocations=" + std::to_string(devices) + "\n";
  EXPECT_EQ(first, expected_first);
  std::string second = run(cmd);
  EXPECT_EQ(second, "devices=" + std::to_string(devices) + " invocations=0\n");
  // Every entry landed complete: no temporary files are left behind.
  int entries = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    EXPECT_EQ(e.path().string().find(".tmp."), std::string::npos) << e.path();
    ++entries;
  }
  EXPECT_EQ(entries, devices);
  fs::remove_all(dir);
}

TEST(CompilerCache, DamagedEntryIsRebuilt) {
  std::string dir = make_temp_dir();
  std::string cmd = "FLAGSTONE_CACHE_DIR='" + dir + "' '" FLAGSTONE_CACHE_HELPER "' 2>&1";
  run(cmd);
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file() && e.path().parent_path().filename() == "cpu")
      std::ofstream(e.path(), std::ios::trunc) << "not a shared object";
  std::string again = run(cmd);
  EXPECT_THAT(again, ::testing::HasSubstr("invocations=1\n"));
  fs::remove_all(dir);
}

TEST(CompilerAutotune, PicksAConfigAndKeepsItOnDisk) {
  std::string dir = make_temp_dir();
  ::setenv("FLAGSTONE_CACHE_DIR", dir.c_str(), 1);
  BuildFn build = [](KernelBuilder& k) {
    int64_t block = k.meta("BLOCK");
    Value x = k.pointer_arg("x", DType::kF32);
    Value y = k.pointer_arg("y", DType::kF32);
    Value n = k.scalar_arg("n", DType::kI32);
    Value offs = k.program_id(0) * block + k.arange(0, block);
    k.store(y + offs, k.sqrt(k.load(x + offs, offs < n, 0.0f)), offs < n);
  };
  std::vector<Config> configs = {Config{{"BLOCK", 32}, {"num_warps", 1}},
                                 Config{{"BLOCK", 64}, {"num_warps", 1}}};
  GridFn grid = [](const Config& c) { return Grid((1000 + c.get("BLOCK") - 1) / c.get("BLOCK")); };
  runtime::Device cpu;
  Stream stream = Stream::default_stream(cpu);
  auto xs = random_floats(1000, 0, 4);
  Tensor x = Tensor::from_vector(xs, {1000}, cpu);
  Tensor y = Tensor::empty({1000}, DType::kF32, cpu);
  Config chosen;
  {
    Kernel k("tuned_sqrt", build, configs);
    k.launch_tuned(stream, grid, {x, y, 1000}, "n=1000");
    chosen = k.tune(stream, grid, {x, y, 1000}, "n=1000");
    EXPECT_TRUE(chosen == configs[0] || chosen == configs[1]);
    auto ys = y.to_vector<float>();
    for (size_t i = 0; i < xs.size(); ++i) ASSERT_EQ(ys[i], std::sqrt(xs[i])) << i;
  }
  // Rewrite the stored choice: a fresh Kernel must take it from disk instead of timing again.
  fs::path file;
  for (const auto& e : fs::directory_iterator(fs::path(dir) / "autotune")) file = e.path();
  ASSERT_FALSE(file.empty());
  nlohmann::json doc = nlohmann::json::parse(std::ifstream(file));
  ASSERT_EQ(doc.size(), 1u);
  const Config& other = chosen == configs[0] ? configs[1] : configs[0];
  for (auto& [key, entry] : doc.items()) {
    EXPECT_THAT(key, ::testing::HasSubstr("n=1000"));
    EXPECT_EQ(entry["config"], chosen.str());
    entry["config"] = other.str();
  }
  std::ofstream(file) << doc.dump();
  Kernel fresh("tuned_sqrt", build, configs);
  EXPECT_EQ(fresh.tune(stream, grid, {x, y, 1000}, "n=1000").str(), other.str());
  ::unsetenv("FLAGSTONE_CACHE_DIR");
  fs::remove_all(dir);
}

}  // namespace
}  // namespace flagstone::compiler::testing
