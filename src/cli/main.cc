// The flagstone CLI: parses the command line, runs one subcommand, and turns every
// flagstone::Error into a one-line message and a non-zero exit code.
#include <cstdio>
#include <exception>

#include "commands.h"
#include "flagstone/base/error.h"
#include "flagstone/version.h"

int main(int argc, char** argv) {
  CLI::App app{
      "flagstone: one system software stack for many kinds of AI chips.\n"
      "Run `flagstone info` to see the devices this machine has, and `flagstone COMMAND --help`\n"
      "for the options of a command."};
  app.set_version_flag("--version", std::string("flagstone ") + FLAGSTONE_VERSION);
  app.require_subcommand(1);
  app.footer(
      "Examples:\n"
      "  flagstone info                 list backends and devices\n"
      "  flagstone info --json          the same as JSON\n"
      "  flagstone bench devices        copy bandwidth of every device\n"
      "Environment: FLAGSTONE_NUM_THREADS sets the cpu thread count.");

  flagstone::cli::register_info_command(app);
  CLI::App& bench = flagstone::cli::register_bench_command(app);
  flagstone::cli::register_bench_devices_command(bench);
#ifdef FLAGSTONE_HAVE_COMM
  flagstone::cli::register_launch_command(app);
  flagstone::cli::register_bench_comm_command(bench);
#endif
#ifdef FLAGSTONE_HAVE_OPS
  flagstone::cli::register_ops_command(app);
#endif
#ifdef FLAGSTONE_HAVE_BENCH_OPS
  flagstone::cli::register_bench_ops_command(bench);
#endif
#ifdef FLAGSTONE_HAVE_COMPILER
  flagstone::cli::register_bench_compiler_command(bench);
  flagstone::cli::register_compile_command(app);
#endif
#ifdef FLAGSTONE_HAVE_RUN
  flagstone::cli::register_run_command(app);
  flagstone::cli::register_convert_command(app);
  flagstone::cli::register_bench_model_command(bench);
#endif

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const flagstone::Error& e) {
    std::fprintf(stderr, "flagstone: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "flagstone: unexpected error: %s\n", e.what());
    return 2;
  }
  return 0;
}
