// The algorithm tuner: measures the host algorithms of a collective for a size bucket on the
// communicator's topology, keeps the winner in a table on disk, and hands it to later calls.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "comm_impl.h"

namespace flagstone::comm {

// The tuning table as a communicator sees it: rank 0's file, sent to every rank at init so all
// ranks pick alike. Keys: "<op>.<topology>.b<log2 bytes>".
struct TuneTable {
  std::mutex mutex;
  std::string topology;  // "n4.h1.cpu4.shm": ranks, hosts, device kinds, transport
  std::map<std::string, Algo> entries;
  bool tune_on_first_use = false;  // FLAGSTONE_COMM_TUNE=1
};

// $FLAGSTONE_CACHE_DIR/comm_tuning.txt, else under $XDG_CACHE_HOME/flagstone or ~/.cache/flagstone.
std::string tuning_file();

// Collective, at init: rank 0 reads the file and broadcasts the entries of this topology.
void load_tuning(fsComm* comm);

// The algorithms worth measuring for a collective (empty when it has only one).
std::vector<Algo> tune_candidates(OpKind kind);

// One measured algorithm: seconds per call, the slowest rank's figure.
struct TuneTiming {
  Algo algo;
  double seconds;
};

// Collective: times every candidate of `kind` at `bytes` (as f32 on scratch host buffers), stores
// the fastest in the table and (rank 0) in the file, and returns all timings.
std::vector<TuneTiming> tune(fsComm* comm, OpKind kind, size_t bytes);

// The algorithm for a call: the user's override, else the table's entry (tuning it first when
// FLAGSTONE_COMM_TUNE=1 and it is missing), else kAuto (the cost model decides).
Algo tuned_algo(fsComm* comm, OpKind kind, size_t bytes);

}  // namespace flagstone::comm
