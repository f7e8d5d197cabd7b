// Starts N ranks of a program on this host with the comm bootstrap in their environment
// (FLAGSTONE_RANK, FLAGSTONE_WORLD_SIZE, FLAGSTONE_COMM_ID, FLAGSTONE_DEVICE), the engine of
// `flagstone launch`. Output is handed back line by line; a rank that fails stops the others.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace flagstone::comm {

struct LaunchOptions {
  int nranks = 1;
  // Device of each rank, cycled when shorter than nranks ("cpu", "cuda:0", "opencl:0"); empty
  // means cpu for every rank.
  std::vector<std::string> devices;
  std::vector<std::string> command;  // program and arguments; the program is looked up in PATH
  std::map<std::string, std::string> env;  // extra environment for every rank
  double timeout_s = 0;                    // 0: no limit; else kill everyone after this long
  double grace_s = 3;  // after a failure, how long the others get between SIGTERM and SIGKILL
};

struct RankExit {
  int rank = 0;
  int pid = 0;
  int exit_code = 0;  // 128 + signal when killed by a signal
  int signal = 0;
  bool stopped_by_launcher = false;  // terminated because another rank failed or time ran out
};

struct LaunchResult {
  int exit_code = 0;  // 0 when every rank exited 0; else the first failing rank's code
  int first_failed_rank = -1;
  bool timed_out = false;
  std::vector<RankExit> ranks;
};

// Called for each complete output line (without the newline) of each rank.
using LineSink = std::function<void(int rank, bool is_stderr, std::string_view line)>;

// Runs the ranks to completion. Throws flagstone::Error for bad options or a program that
// cannot be started; rank failures are reported in the result, not thrown.
LaunchResult launch(const LaunchOptions& options, const LineSink& sink);

// Explains a rank's exit in words: "exited with code 3", "was killed by signal 9 (Killed)".
std::string describe_exit(const RankExit& exit);

}  // namespace flagstone::comm
