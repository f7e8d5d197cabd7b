// `flagstone bench`: the group that holds every benchmark; layers register theirs under it.
#include "commands.h"

namespace flagstone::cli {

CLI::App& register_bench_command(CLI::App& app) {
  CLI::App* bench = app.add_subcommand(
      "bench", "Measure devices, operators, communication and models (see each subcommand).");
  bench->require_subcommand(1);
  bench->footer(
      "Every benchmark warms up first, repeats, and reports the median; --json gives the raw\n"
      "numbers. Example: flagstone bench devices --size-mib 256");
  return *bench;
}

}  // namespace flagstone::cli
