// Runs the `flagstone` binary from a test and captures its exit status, stdout and stderr.
// Each call gets its own stderr file, so tests running in parallel processes never mix output.
#pragma once

#include <string>

namespace flagstone::engine::testing {

struct CliOutcome {
  int status = -1;
  std::string out;  // stdout
  std::string err;  // stderr (the ops library may log fallback notices there)
};

// `args` follow the binary name; `input`, when given, is piped to stdin through printf.
CliOutcome run_flagstone(const std::string& args, const std::string& input = "");

}  // namespace flagstone::engine::testing
