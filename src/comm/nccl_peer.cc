// The raw-NCCL peer of the benchmark (see flagstone/comm/nccl_peer.h): forwards to the engine when
// the build has NCCL, otherwise reports that there is nothing to compare against.
#include "flagstone/comm/nccl_peer.h"

#include "engines.h"
#ifdef FLAGSTONE_COMM_NCCL
#include "nccl/nccl_engine.h"
#endif

namespace flagstone::comm {

bool nccl_serves_all(const Communicator& comm) {
  int32_t mine = 0;
#ifdef FLAGSTONE_COMM_NCCL
  fsComm* raw = comm.get();
  FS_CHECK(raw, kInvalidArgument, "nccl_serves_all: the communicator is not initialized");
  mine = raw->nccl && raw->nccl->covers_all ? 1 : 0;
#endif
  int32_t all = 0;
  comm.all_reduce(host_buf(&mine), host_buf(&all), 1, fsInt32, fsMin);
  return all == 1;
}

void nccl_direct(const Communicator& comm, const std::string& op, const void* send, void* recv,
                 size_t count, fsDataType_t dtype, fsRedOp_t redop, const runtime::Stream& stream) {
#ifdef FLAGSTONE_COMM_NCCL
  fsComm* raw = comm.get();
  if (raw && raw->nccl &&
      nccl_direct_call(*raw->nccl, raw, op, send, recv, count, dtype, redop, stream))
    return;
#else
  (void)op, (void)send, (void)recv, (void)count, (void)dtype, (void)redop, (void)stream;
#endif
  throw_error(ErrorCategory::kUnsupported, "nccl_direct (rank ", comm.rank(),
              "): this communicator does not run on NCCL (every rank must be on its own CUDA GPU",
              " in a build with CUDA, and libnccl.so.2 must load)");
}

}  // namespace flagstone::comm
