// The NCCL engine's state, shared by its parts: the communicator of the CUDA cluster, and the
// streams, events and pinned slots with which the cluster leader stages data for the host
// transport.
#pragma once

#include <cuda_runtime.h>

#include <atomic>
#include <memory>
#include <vector>

#include "../engines.h"
#include "../staging.h"
#include "nccl_loader.h"
#include "nccl_watchdog.h"

namespace flagstone::comm {

class NcclEngine {
 public:
  const NcclApi* api = nullptr;
  ncclComm_t comm = nullptr;
  int device_index = 0;
  int cluster_rank = 0;
  int cluster_size = 0;
  bool covers_all = false;
  std::vector<int> cluster;  // comm ranks of the CUDA cluster, in NCCL rank order

  // Staging pipeline of the leader (created on first use): device -> host copies on d2h, host ->
  // device copies on h2d, one pinned slot per chunk in flight.
  cudaStream_t d2h = nullptr;
  cudaStream_t h2d = nullptr;
  cudaEvent_t start = nullptr;
  cudaEvent_t done = nullptr;
  std::vector<cudaEvent_t> copied_out;  // per slot: the slot holds the chunk's device data
  std::vector<cudaEvent_t> copied_in;   // per slot: the slot's data reached the device
  std::unique_ptr<runtime::PinnedHostBuffer> pinned;

  std::atomic<bool> aborted{false};        // ncclCommAbort ran: `comm` is gone
  std::unique_ptr<NcclWatchdog> watchdog;  // started by the first watched call

  ~NcclEngine();
};

// Throws fsSystemError naming the CUDA call, rank and device unless `status` is cudaSuccess.
void check_cuda(cudaError_t status, const char* call, const fsComm* comm);
// Throws the fsResult_t matching an NCCL failure, naming the call, rank and device.
void check_nccl(const NcclApi* api, ncclResult_t rc, const char* call, const fsComm* comm);
ncclDataType_t nccl_type(fsDataType_t dtype);
ncclRedOp_t nccl_op(fsRedOp_t op);

// Hands the call just queued on `stream` to the engine's watchdog (the per-operation timeout);
// inside an NCCL group, at the group's end.
void watch_nccl(NcclEngine& engine, fsComm* comm, cudaStream_t stream, const char* op);

// A device address for an argument: device buffers as they are, host memory through a
// temporary device buffer (copied in for inputs, copied back by finish() for outputs).
struct DeviceArg {
  char* ptr = nullptr;
  runtime::Buffer temp;
  const fsBuf* host = nullptr;
  size_t bytes = 0;

  DeviceArg(fsComm* comm, const fsBuf* buf, size_t size, bool input, const runtime::Stream& s);
  void finish(const runtime::Stream& s);
};

// The leader's part of a hierarchical all-reduce on the ring path: `count` elements at `device`
// go to the host in chunks of `chunk_bytes` (what the other members use), each chunk runs `body`
// in place (the exchange between clusters) and goes back, with copies of other chunks
// overlapping the exchange. Ordered after earlier work on `stream`; later work on `stream` sees
// the result.
void staged_exchange(fsComm* comm, NcclEngine& engine, char* device, size_t count, size_t esize,
                     const ChunkBody& body, cudaStream_t stream, size_t chunk_bytes);

}  // namespace flagstone::comm
