// The communicator object behind fsComm_t and the guard that turns exceptions into status codes
// plus the per-thread last-error message at the C boundary.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "flagstone/runtime/device.h"
#include "host/algorithms.h"
#include "host/bootstrap.h"
#include "host/transport.h"
#include "internal.h"

namespace flagstone::comm {

class NcclEngine;
class MpiEngine;
class Arena;
struct ArenaPin;
struct TuneTable;

struct ResolvedConfig {
  std::string device = "cpu";
  int64_t timeout_ms = 60000;
  int64_t init_timeout_ms = 120000;
  Algo algo = Algo::kAuto;
  std::string engine = "auto";
  bool use_shm = true;
  bool check = true;
  size_t chunk_bytes = 256 << 10;      // ring pipelining unit
  size_t stage_bytes = 4 << 20;        // device staging unit
  int64_t arena_bytes = 1 << 20;       // all-reduces from this size use the shm arena; -1: never
  size_t arena_slot_bytes = 16 << 20;  // the arena's largest chunk
  bool nccl_watchdog = true;           // NCCL calls get the per-operation timeout
};

ResolvedConfig resolve_config(const fsConfig* config);

}  // namespace flagstone::comm

struct fsComm {
  int rank = 0;
  int nranks = 1;
  flagstone::comm::ResolvedConfig config;
  flagstone::runtime::Device device;
  bool host_accessible = true;  // device memory is host memory (cpu)
  bool any_staged = false;      // some rank stages through host: everyone chunks alike
  std::vector<flagstone::comm::PeerInfo> peers;
  flagstone::comm::Fd abort_fd;  // eventfd: readable once aborted
  std::unique_ptr<flagstone::comm::Transport> transport;
  // shared_ptr so that engines stay incomplete types here (their deleters travel with them).
  std::shared_ptr<flagstone::comm::NcclEngine> nccl;
  std::shared_ptr<flagstone::comm::MpiEngine> mpi;
  std::shared_ptr<flagstone::comm::TuneTable> tuning;  // algorithm choices measured earlier
  std::atomic<int> async_error{fsSuccess};
  std::atomic<bool> aborted{false};
  std::mutex failure_mutex;
  std::string failure_reason;  // set by whoever failed the comm outside a call (NCCL watchdog)
  uint32_t seq = 0;
  int shm_pairs = 0;  // peers reached through shared memory
  // Mixed CUDA and other ranks with NCCL: all-reduce runs cluster -> host -> cluster, the host
  // part among the CUDA cluster's leader and the other ranks, with its own call counter.
  bool hierarchical = false;
  std::vector<int> cross_members;
  uint32_t cross_seq = 0;
  // Shared-memory arenas for large all-reduces (host/arena.h): of all ranks, and of the
  // hierarchical exchange's members; opened on first use, `*_failed` once they could not be.
  std::shared_ptr<flagstone::comm::Arena> arena, cross_arena;
  bool arena_failed = false, cross_arena_failed = false;
  std::mutex mutex;  // one operation at a time
  std::unique_ptr<flagstone::runtime::PinnedHostBuffer> stage_in, stage_out;
  flagstone::runtime::Stream upload_stream;  // result chunks of staged calls go back on this

  ~fsComm();
};

namespace flagstone::comm {

// Records `message` as this thread's last error.
void set_last_error(const std::string& message);

// Maps the exception being handled to a status and records its message.
fsResult_t map_exception();

// Runs `body`, mapping exceptions to status codes and recording the message.
template <typename Body>
fsResult_t guard(Body&& body) {
  try {
    body();
    return fsSuccess;
  } catch (...) {
    return map_exception();
  }
}

// A collective in progress: marks the comm broken if the body throws after talking to peers.
HostOp make_host_op(fsComm* comm, OpKind kind);
void mark_failed(fsComm* comm, fsResult_t code) noexcept;
void check_usable(fsComm* comm, const char* op);

// The shm arena of the comm's ranks (`cross`: of the hierarchical exchange's members) for an
// all-reduce of `total_bytes`, opened collectively on first use; nullptr (alike on every member)
// when the call should take the ring path: small, algorithm forced, shm off or unavailable.
// `op` is the call's host operation over the same members.
Arena* arena_for(fsComm* comm, HostOp& op, bool cross, size_t total_bytes, bool device_member,
                 const ArenaPin* pin);
// The chunk in which every member feeds an all-reduce of `total_bytes` among `members` ranks to
// the arena (staged members copy chunks this size), or 0 when the call takes the ring path.
size_t arena_chunk_bytes(fsComm* comm, int members, size_t total_bytes, size_t esize);

}  // namespace flagstone::comm
