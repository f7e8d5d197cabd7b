// Direct calls into the NCCL library a communicator's engine loaded, past Flagstone's checks and
// dispatch: the peer `flagstone bench comm --nccl-peer` measures our layer against, nccl-tests
// style.
#pragma once

#include <cstddef>
#include <string>

#include "flagstone/comm/communicator.h"
#include "flagstone/runtime/device.h"

namespace flagstone::comm {

// True when every rank of `comm` runs its calls on NCCL (every rank on its own CUDA GPU and
// NCCL loaded). Collective: call it on every rank.
bool nccl_serves_all(const Communicator& comm);

// Calls NCCL for `op` ("allreduce", "allgather", "reducescatter", "alltoall", "broadcast",
// "reduce"; root 0) on device addresses of the comm's device, queued on `stream` and not waited
// for. Counts as in the C API (per-rank block counts for allgather/reducescatter/alltoall).
// Throws kUnsupported when nccl_serves_all() is false.
void nccl_direct(const Communicator& comm, const std::string& op, const void* send, void* recv,
                 size_t count, fsDataType_t dtype, fsRedOp_t redop, const runtime::Stream& stream);

}  // namespace flagstone::comm
