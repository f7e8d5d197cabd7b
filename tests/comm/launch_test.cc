// Tests of the launcher behind `flagstone launch`: environment and output forwarding per rank,
// and a clean stop of every rank when one fails.
#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <sstream>
#include <tuple>

#include "flagstone/base/error.h"
#include "flagstone/comm/launch.h"

namespace {

using flagstone::comm::launch;
using flagstone::comm::LaunchOptions;

struct Lines {
  std::mutex mutex;
  std::vector<std::tuple<int, bool, std::string>> lines;
  flagstone::comm::LineSink sink() {
    return [this](int rank, bool is_stderr, std::string_view line) {
      std::lock_guard<std::mutex> lock(mutex);
      lines.emplace_back(rank, is_stderr, std::string(line));
    };
  }
  std::string all() const {
    std::ostringstream text;
    for (const auto& [rank, err, line] : lines)
      text << '[' << rank << (err ? " err] " : "] ") << line << '\n';
    return text.str();
  }
};

TEST(Launch, RanksGetTheirEnvironmentAndOutputIsForwardedPerRank) {
  LaunchOptions options;
  options.nranks = 3;
  options.devices = {"cpu"};
  options.command = {COMM_WORKER, "hello"};
  options.timeout_s = 60;
  Lines out;
  auto result = launch(options, out.sink());
  ASSERT_EQ(result.exit_code, 0) << out.all();
  for (int rank = 0; rank < 3; ++rank) {
    std::ostringstream want_out, want_err;
    want_out << "hello rank " << rank << " of 3 on cpu:0 sum 3";
    want_err << "stderr of rank " << rank;
    bool found_out = false, found_err = false;
    for (const auto& [r, err, line] : out.lines) {
      if (r == rank && !err && line == want_out.str()) found_out = true;
      if (r == rank && err && line == want_err.str()) found_err = true;
    }
    EXPECT_TRUE(found_out) << "rank " << rank << ":\n" << out.all();
    EXPECT_TRUE(found_err) << "rank " << rank << ":\n" << out.all();
  }
}

TEST(Launch, AFailingRankStopsTheOthers) {
  LaunchOptions options;
  options.nranks = 3;
  options.command = {COMM_WORKER, "die"};
  options.env["FLAGSTONE_COMM_TIMEOUT_MS"] = "60000";  // survivors would wait a minute alone
  options.grace_s = 1;
  Lines out;
  auto start = std::chrono::steady_clock::now();
  auto result = launch(options, out.sink());
  double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(result.exit_code, 3) << out.all();
  EXPECT_EQ(result.first_failed_rank, 1) << out.all();
  EXPECT_LT(took, 30.0);
  ASSERT_EQ(result.ranks.size(), 3u);
  EXPECT_NE(flagstone::comm::describe_exit(result.ranks[1]).find("exited with code 3"),
            std::string::npos);
}

TEST(Launch, MissingProgramIsNamed) {
  LaunchOptions options;
  options.nranks = 2;
  options.command = {"/nonexistent/flagstone-test-program"};
  try {
    launch(options, [](int, bool, std::string_view) {});
    FAIL() << "launch of a missing program did not throw";
  } catch (const flagstone::Error& error) {
    EXPECT_EQ(error.category(), flagstone::ErrorCategory::kNotFound);
    EXPECT_NE(error.message().find("flagstone-test-program"), std::string::npos);
  }
}

}  // namespace
