// `flagstone launch -n N [--devices ...] -- PROGRAM ARGS`: starts N ranks of a comm program on
// this host, forwards their output with a rank prefix, and fails cleanly when a rank dies.
#include <cstdio>
#include <memory>
#include <mutex>
#include <sstream>

#include "commands.h"
#include "flagstone/base/error.h"
#include "flagstone/comm/launch.h"

namespace flagstone::cli {
namespace {

struct LaunchArgs {
  comm::LaunchOptions options;
  std::string devices;
  std::vector<std::string> env;
  bool quiet = false;
};

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream stream(text);
  for (std::string item; std::getline(stream, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

void run(LaunchArgs& args) {
  comm::LaunchOptions& options = args.options;
  options.devices = split_list(args.devices);
  for (const std::string& entry : args.env) {
    size_t eq = entry.find('=');
    FS_CHECK(eq != std::string::npos && eq > 0, kInvalidArgument, "launch: --env '", entry,
             "' is not KEY=VALUE");
    options.env[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  int width = options.nranks > 9 ? (options.nranks > 99 ? 3 : 2) : 1;
  bool quiet = args.quiet;
  comm::LaunchResult result = comm::launch(options, [width, quiet](int rank, bool is_stderr,
                                                                   std::string_view line) {
    FILE* out = is_stderr ? stderr : stdout;
    if (quiet)
      std::fprintf(out, "%.*s\n", static_cast<int>(line.size()), line.data());
    else
      std::fprintf(out, "[%*d] %.*s\n", width, rank, static_cast<int>(line.size()), line.data());
    std::fflush(out);
  });
  if (result.exit_code == 0) return;
  if (result.timed_out) {
    std::fprintf(stderr, "flagstone launch: ranks still running after --timeout %.0f s; stopped\n",
                 options.timeout_s);
  } else {
    const comm::RankExit& failed = result.ranks[result.first_failed_rank];
    std::fprintf(stderr, "flagstone launch: %s; stopped the other ranks\n",
                 comm::describe_exit(failed).c_str());
  }
  throw CLI::RuntimeError(result.exit_code);
}

}  // namespace

void register_launch_command(CLI::App& app) {
  auto args = std::make_shared<LaunchArgs>();
  CLI::App* cmd = app.add_subcommand(
      "launch", "Start N ranks of a communication program on this host (like mpirun/torchrun).");
  cmd->add_option("-n,--nranks", args->options.nranks, "Number of ranks")
      ->required()
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--devices", args->devices,
                  "Comma-separated device per rank, cycled: cpu,cuda:0,opencl:0 (default cpu)");
  cmd->add_option("--timeout", args->options.timeout_s,
                  "Stop every rank after this many seconds (default: no limit)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--env", args->env, "Extra KEY=VALUE for every rank (repeatable)");
  cmd->add_flag("--no-prefix", args->quiet, "Do not prefix output lines with [rank]");
  cmd->add_option("command", args->options.command, "PROGRAM and its ARGS, after --")->required();
  cmd->footer(
      "Each rank gets FLAGSTONE_RANK, FLAGSTONE_LOCAL_RANK, FLAGSTONE_WORLD_SIZE,\n"
      "FLAGSTONE_COMM_ID (the bootstrap address) and FLAGSTONE_DEVICE; fsCommInitFromEnv()\n"
      "(C) or Communicator::from_env() (C++) joins them. If a rank exits non-zero or is killed,\n"
      "the others are stopped (SIGTERM, then SIGKILL) and launch exits with that rank's code.\n"
      "Under mpirun or srun, skip launch: ranks read OMPI_COMM_WORLD_*, PMI_* or SLURM_*.\n"
      "Examples:\n"
      "  flagstone launch -n 4 -- ./my_allreduce\n"
      "  flagstone launch -n 3 --devices cpu,opencl:0 -- flagstone bench comm\n"
      "  flagstone launch -n 2 --env FLAGSTONE_COMM_TIMEOUT_MS=5000 -- ./train --steps 10");
  cmd->callback([args] { run(*args); });
}

}  // namespace flagstone::cli
