// The comm library's algorithm tuner from C++: measure ring/tree/rhd/direct for a collective and
// size on a communicator's topology and store the winner for every later program (bench --tune).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "flagstone/comm/communicator.h"

namespace flagstone::comm {

struct AlgoTiming {
  std::string algo;  // "ring", "tree", "rhd", "direct"
  double seconds;    // per call, the slowest rank's figure
};

// Collective: times each host algorithm of `op` ("allreduce", "reduce", "broadcast",
// "allgather") at `bytes` (f32, total size as nccl-tests counts it) on scratch buffers, stores the
// fastest for this op, size bucket (power of two) and topology (ranks, hosts, device kinds,
// shm or tcp) in tuning_file_path(), and returns every timing. Later communicators of the same
// topology use the stored choice unless FLAGSTONE_COMM_ALGO / fsConfig.algo overrides it.
std::vector<AlgoTiming> tune_algorithms(const Communicator& comm, const std::string& op,
                                        size_t bytes);

// The host algorithm a call of `op` moving `bytes` will use on this communicator: the user's
// override, else the stored tuning choice, else "auto" (the built-in cost model decides).
std::string algorithm_for(const Communicator& comm, const std::string& op, size_t bytes);

// $FLAGSTONE_CACHE_DIR/comm_tuning.txt, else $XDG_CACHE_HOME/flagstone/ or ~/.cache/flagstone/.
std::string tuning_file_path();

}  // namespace flagstone::comm
