// Random parity cases per op: odd shapes, broadcast and non-contiguous inputs, drawn fresh for
// each run (seeded, printed), for every op that has an implementation besides the reference.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "ops/ops_test_util.h"

namespace flagstone::ops::testing {

struct ParityCase {
  std::vector<Tensor> inputs;
  Attrs attrs;
  int64_t reduction_length = 1;  // terms summed per output element, for the atol scaling
  std::string label;
};

using CaseGenerator =
    std::function<std::vector<ParityCase>(Rng& rng, DType dtype, const Device& device)>;

// Generators by op name; an op without one fails the parity test when it has implementations.
const std::map<std::string, CaseGenerator>& parity_generators();
// Cases for ops served by the generated provider (tests/ops/generated/parity_cases_gen.cc);
// adds generators only for ops that have none yet.
void add_generated_parity_cases(std::map<std::string, CaseGenerator>& generators);
// Cases for the data-movement ops (tests/ops/parity_cases_movement.cc).
void add_movement_parity_cases(std::map<std::string, CaseGenerator>& generators);

}  // namespace flagstone::ops::testing
