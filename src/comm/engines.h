// Hooks between the communicator and its optional native engines (NCCL for CUDA ranks, Open MPI
// for CPU ranks under mpirun); each engine serves the calls it can and leaves the rest to the host.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "comm_impl.h"

namespace flagstone::comm {

// One collective or point-to-point call as the engines see it.
struct Call {
  OpKind kind = OpKind::kAllReduce;
  fsBuf send{};
  fsBuf recv{};
  size_t count = 0;
  fsDataType_t dtype = fsFloat32;
  fsRedOp_t redop = fsSum;
  int root = 0;  // root, or the peer of send/recv
  const size_t* send_counts = nullptr;
  const size_t* send_displs = nullptr;
  const size_t* recv_counts = nullptr;
  const size_t* recv_displs = nullptr;
};

#ifdef FLAGSTONE_COMM_NCCL
// Collective over the comm at init: CUDA ranks form one NCCL communicator (the id travels over
// the host transport). Returns nullptr on ranks that are not on CUDA or when NCCL is off.
std::shared_ptr<NcclEngine> create_nccl_engine(fsComm* comm);
// Serves the call when this engine can (every rank on CUDA, or the hierarchical all-reduce of a
// mixed group); returns false to let the host path run.
bool nccl_run(NcclEngine& engine, fsComm* comm, const Call& call, const runtime::Stream& stream);
// Grouped send/recv of an all-CUDA comm (host buffers go through device temporaries).
bool nccl_p2p(NcclEngine& engine, fsComm* comm, const std::vector<Call>& calls,
              const runtime::Stream& stream);
// Mixed groups: every rank (CUDA or not) runs all-reduce through here; false when not mixed.
bool hierarchical_all_reduce(fsComm* comm, const Call& call, const runtime::Stream& stream);
// The raw NCCL call behind flagstone::comm::nccl_direct (nccl_peer.h): false when the engine
// does not cover every rank.
bool nccl_direct_call(NcclEngine& engine, fsComm* comm, const std::string& op, const void* send,
                      void* recv, size_t count, fsDataType_t dtype, fsRedOp_t redop,
                      const runtime::Stream& stream);
// fsGroupStart/End over comms that all run on NCCL: one ncclGroupStart/ncclGroupEnd around
// their calls (false: this comm has no NCCL engine). The calls are watched from the group's end.
bool nccl_covers_all(fsComm* comm);
bool nccl_group_start(fsComm* comm);
void nccl_group_end(fsComm* comm);
void nccl_abort(NcclEngine& engine);  // ncclCommAbort: safe from another thread
fsResult_t nccl_async_error(NcclEngine& engine);
#endif

#ifdef FLAGSTONE_COMM_MPI
// When the comm spans exactly MPI_COMM_WORLD of an mpirun/srun job of cpu ranks and the engine
// is "mpi" (or "auto" under mpirun), a duplicate of the world communicator; else nullptr.
std::shared_ptr<MpiEngine> create_mpi_engine(fsComm* comm);
bool mpi_run(MpiEngine& engine, fsComm* comm, const Call& call);
// Under mpirun: rank 0's id broadcast to the others through MPI. False when not under MPI.
bool mpi_share_unique_id(fsUniqueId* id, int rank, int nranks);
#endif

}  // namespace flagstone::comm
