// The Open MPI engine: for runs started by mpirun/srun whose ranks are all on cpu, collectives map
// to the MPI library's own (FLAGSTONE_COMM_ENGINE=mpi); f16/bf16 use MPI ops that reduce in f32.
// The C API only: keep Open MPI from pulling in its deprecated C++ bindings.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <climits>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "../engines.h"
#include "../host/reduce.h"
#include "../staging.h"

namespace flagstone::comm {

class MpiEngine {
 public:
  explicit MpiEngine(MPI_Comm comm) : comm_(comm) {}
  ~MpiEngine() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Comm_free(&comm_);
  }
  MPI_Comm comm() const { return comm_; }

 private:
  MPI_Comm comm_;
};

namespace {

bool launched_by_mpi() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMI_SIZE") || std::getenv("PMIX_RANK");
}

void finalize_at_exit() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

// Initializes MPI once per process (unless the application already did).
void ensure_mpi() {
  static std::once_flag once;
  std::call_once(once, [] {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (initialized) return;
    int provided = 0;
    if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS)
      fail(fsSystemError, "MPI_Init_thread failed");
    std::atexit(finalize_at_exit);
  });
}

void check_mpi(int rc, const char* call, const fsComm* comm) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING] = {};
  int length = 0;
  MPI_Error_string(rc, text, &length);
  fail(fsSystemError, call, " (rank ", comm->rank, "): ", text);
}

template <fsDataType_t kType, fsRedOp_t kOp>
void half_op(void* in, void* inout, int* len, MPI_Datatype*) {
  reduce_into(inout, in, static_cast<size_t>(*len), kType, kOp);
}

MPI_Datatype mpi_type(fsDataType_t dtype) {
  switch (dtype) {
    case fsInt8:
      return MPI_INT8_T;
    case fsUint8:
      return MPI_UINT8_T;
    case fsInt32:
      return MPI_INT32_T;
    case fsUint32:
      return MPI_UINT32_T;
    case fsInt64:
      return MPI_INT64_T;
    case fsUint64:
      return MPI_UINT64_T;
    case fsFloat32:
      return MPI_FLOAT;
    case fsFloat64:
      return MPI_DOUBLE;
    default:
      return MPI_UINT16_T;  // f16/bf16 travel as 16-bit words
  }
}

// Built-in ops for native types; user ops that reduce in f32 for f16/bf16.
MPI_Op mpi_op(fsDataType_t dtype, fsRedOp_t op) {
  if (dtype != fsFloat16 && dtype != fsBfloat16) {
    switch (op) {
      case fsProd:
        return MPI_PROD;
      case fsMax:
        return MPI_MAX;
      case fsMin:
        return MPI_MIN;
      default:
        return MPI_SUM;
    }
  }
  static MPI_Op ops[2][4];
  static std::once_flag once;
  std::call_once(once, [] {
    MPI_User_function* fns[2][4] = {{half_op<fsFloat16, fsSum>, half_op<fsFloat16, fsProd>,
                                     half_op<fsFloat16, fsMax>, half_op<fsFloat16, fsMin>},
                                    {half_op<fsBfloat16, fsSum>, half_op<fsBfloat16, fsProd>,
                                     half_op<fsBfloat16, fsMax>, half_op<fsBfloat16, fsMin>}};
    for (int t = 0; t < 2; ++t)
      for (int o = 0; o < 4; ++o) MPI_Op_create(fns[t][o], 1, &ops[t][o]);
  });
  return ops[dtype == fsBfloat16][op == fsAvg ? fsSum : op];
}

bool fits_int(size_t count) {
  return count <= static_cast<size_t>(INT_MAX);
}

}  // namespace

std::shared_ptr<MpiEngine> create_mpi_engine(fsComm* comm) {
  if (comm->config.engine != "mpi") return nullptr;
  for (const PeerInfo& peer : comm->peers)
    if (std::strncmp(peer.device, "cpu", 3) != 0)
      fail(fsUnsupported, "engine mpi (rank ", comm->rank, "): rank ", peer.rank, " is on ",
           peer.device, "; the MPI engine serves cpu ranks only");
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized && !launched_by_mpi())
    fail(fsInvalidArgument, "engine mpi (rank ", comm->rank,
         "): this process was not started by mpirun or srun");
  ensure_mpi();
  int world_rank = 0, world_size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world_size);
  if (world_size != comm->nranks || world_rank != comm->rank)
    fail(fsInvalidArgument, "engine mpi: comm rank ", comm->rank, " of ", comm->nranks,
         " is MPI world rank ", world_rank, " of ", world_size,
         "; the MPI engine needs the comm to be MPI_COMM_WORLD in the same order");
  MPI_Comm dup;
  check_mpi(MPI_Comm_dup(MPI_COMM_WORLD, &dup), "MPI_Comm_dup", comm);
  MPI_Comm_set_errhandler(dup, MPI_ERRORS_RETURN);
  return std::make_shared<MpiEngine>(dup);
}

bool mpi_share_unique_id(fsUniqueId* id, int rank, int nranks) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized && !launched_by_mpi()) return false;
  ensure_mpi();
  int world_rank = 0, world_size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world_size);
  if (world_rank != rank || world_size != nranks) return false;
  if (rank == 0) *id = start_rendezvous(0, resolve_config(nullptr).init_timeout_ms);
  return MPI_Bcast(id, sizeof(fsUniqueId), MPI_BYTE, 0, MPI_COMM_WORLD) == MPI_SUCCESS;
}

bool mpi_run(MpiEngine& engine, fsComm* comm, const Call& call) {
  View send = view_of(comm, call.send), recv = view_of(comm, call.recv);
  if (send.staged || recv.staged || !fits_int(call.count * comm->nranks)) return false;
  MPI_Comm c = engine.comm();
  MPI_Datatype type = mpi_type(call.dtype);
  MPI_Op op = mpi_op(call.dtype, call.redop);
  int count = static_cast<int>(call.count);
  void* in = send.host == recv.host ? MPI_IN_PLACE : send.host;
  size_t esize = dtype_bytes(call.dtype);
  bool avg = call.redop == fsAvg;
  switch (call.kind) {
    case OpKind::kAllReduce:
      check_mpi(MPI_Allreduce(in, recv.host, count, type, op, c), "MPI_Allreduce", comm);
      if (avg) finish_average(recv.host, call.count, call.dtype, comm->nranks);
      return true;
    case OpKind::kReduce: {
      bool root = comm->rank == call.root;
      check_mpi(MPI_Reduce(root ? in : send.host, recv.host, count, type, op, call.root, c),
                "MPI_Reduce", comm);
      if (avg && root) finish_average(recv.host, call.count, call.dtype, comm->nranks);
      return true;
    }
    case OpKind::kBroadcast:
      if (comm->rank == call.root && send.host != recv.host)
        std::memmove(recv.host, send.host, call.count * esize);
      check_mpi(MPI_Bcast(recv.host, count, type, call.root, c), "MPI_Bcast", comm);
      return true;
    case OpKind::kAllGather:
      check_mpi(MPI_Allgather(send.host, count, type, recv.host, count, type, c), "MPI_Allgather",
                comm);
      return true;
    case OpKind::kReduceScatter:
      check_mpi(MPI_Reduce_scatter_block(send.host, recv.host, count, type, op, c),
                "MPI_Reduce_scatter_block", comm);
      if (avg) finish_average(recv.host, call.count, call.dtype, comm->nranks);
      return true;
    case OpKind::kGather:
      check_mpi(MPI_Gather(send.host, count, type, recv.host, count, type, call.root, c),
                "MPI_Gather", comm);
      return true;
    case OpKind::kScatter:
      check_mpi(MPI_Scatter(send.host, count, type, recv.host, count, type, call.root, c),
                "MPI_Scatter", comm);
      return true;
    case OpKind::kBarrier:
      check_mpi(MPI_Barrier(c), "MPI_Barrier", comm);
      return true;
    default:
      return false;  // all-to-all-v and send/recv take the host transport
  }
}

}  // namespace flagstone::comm
