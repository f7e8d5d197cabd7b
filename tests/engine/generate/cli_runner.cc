// Runs the CLI through popen with stderr redirected to a file named after the process and a
// counter: ctest runs the tests of one binary as separate processes at the same time.
#include "engine/generate/cli_runner.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>

namespace flagstone::engine::testing {

CliOutcome run_flagstone(const std::string& args, const std::string& input) {
  static std::atomic<int> counter{0};
  const std::string err_path = ::testing::TempDir() + "/flagstone_cli_stderr_" +
                               std::to_string(::getpid()) + "_" + std::to_string(counter++) +
                               ".txt";
  std::string command = std::string(FLAGSTONE_CLI) + " " + args + " 2>" + err_path;
  if (!input.empty()) command = "printf '" + input + "' | " + command;
  CliOutcome result;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) return result;
  std::array<char, 4096> buffer;
  size_t n;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0)
    result.out.append(buffer.data(), n);
  result.status = ::pclose(pipe);
  {
    std::ifstream in(err_path, std::ios::binary);
    result.err.assign(std::istreambuf_iterator<char>(in), {});
  }
  std::error_code ec;
  std::filesystem::remove(err_path, ec);
  return result;
}

}  // namespace flagstone::engine::testing
