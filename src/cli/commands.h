// Registration functions of the CLI's subcommands: each layer adds one here and calls it from
// main.cc, so subcommands live next to nothing but their own code.
#pragma once

#include <CLI/CLI.hpp>

namespace flagstone::cli {

void register_info_command(CLI::App& app);
// Returns the `bench` group so that layers add their benchmarks (`bench ops`, `bench comm`...).
CLI::App& register_bench_command(CLI::App& app);
void register_bench_devices_command(CLI::App& bench);
#ifdef FLAGSTONE_HAVE_COMM
void register_launch_command(CLI::App& app);        // src/cli/launch_command.cc
void register_bench_comm_command(CLI::App& bench);  // src/cli/bench_comm.cc
#endif
#ifdef FLAGSTONE_HAVE_OPS
void register_ops_command(CLI::App& app);  // src/cli/ops_command.cc
#endif
#ifdef FLAGSTONE_HAVE_BENCH_OPS
void register_bench_ops_command(CLI::App& bench);  // src/cli/bench_ops.cc
#endif
#ifdef FLAGSTONE_HAVE_COMPILER
void register_bench_compiler_command(CLI::App& bench);  // src/cli/bench_compiler.cc
void register_compile_command(CLI::App& app);           // src/cli/compile_command.cc
#endif
#ifdef FLAGSTONE_HAVE_RUN
void register_run_command(CLI::App& app);            // src/cli/run_command.cc
void register_bench_model_command(CLI::App& bench);  // src/cli/bench_model.cc
void register_convert_command(CLI::App& app);        // src/cli/convert_command.cc
#endif

}  // namespace flagstone::cli
