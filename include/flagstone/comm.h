/* The Flagstone collective-communication C API: NCCL-like names and semantics over ranks that sit
 * on different kinds of devices (cpu, CUDA, OpenCL), usable from any language with a C FFI. */
#ifndef FLAGSTONE_COMM_H_
#define FLAGSTONE_COMM_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Every call returns a status; on failure fsGetLastError() names the rank, op and argument. */
typedef enum {
  fsSuccess = 0,
  fsInvalidArgument = 1, /* a bad pointer, count, dtype, root, peer... or ranks that disagree */
  fsInvalidUsage = 2,    /* a valid call at the wrong time (destroyed or aborted comm, group) */
  fsSystemError = 3,     /* the OS failed us: socket, shm, memory */
  fsRemoteError = 4,     /* a peer died, closed its connection or reported an error */
  fsTimeout = 5,         /* an operation did not finish within the communicator's timeout */
  fsAborted = 6,         /* fsCommAbort was called on this communicator */
  fsUnsupported = 7,     /* valid request this build or device cannot serve */
  fsInternalError = 8,   /* a Flagstone bug */
  fsInProgress = 9,      /* async error query: nothing failed yet */
  fsNumResults = 10,
  fsResultMaxEnum = 0x7fffffff /* not a status: see fsDataTypeMaxEnum */
} fsResult_t;

typedef enum {
  fsInt8 = 0,
  fsUint8 = 1,
  fsInt32 = 2,
  fsUint32 = 3,
  fsInt64 = 4,
  fsUint64 = 5,
  fsFloat16 = 6,
  fsBfloat16 = 7,
  fsFloat32 = 8,
  fsFloat64 = 9,
  fsNumTypes = 10,
  /* Makes every int a valid value of the type, so a bad value from a caller can be checked and
   * reported instead of being undefined behaviour in C++. Not a datatype. */
  fsDataTypeMaxEnum = 0x7fffffff
} fsDataType_t;

/* f16 and bf16 are reduced in f32 and rounded once per hop. */
typedef enum {
  fsSum = 0,
  fsProd = 1,
  fsMax = 2,
  fsMin = 3,
  fsAvg = 4,
  fsNumOps = 5,
  fsRedOpMaxEnum = 0x7fffffff /* not an operation: see fsDataTypeMaxEnum */
} fsRedOp_t;

/* The rendezvous: the root's TCP address plus a random magic. Opaque; copy it by value to the
 * other ranks (any channel) or pass it as text with fsUniqueIdToString/FromString. */
#define FS_UNIQUE_ID_BYTES 128
typedef struct {
  char internal[FS_UNIQUE_ID_BYTES];
} fsUniqueId;

typedef struct fsComm* fsComm_t;

/* An opaque pointer to a flagstone::runtime::Stream of the communicator's device; NULL means
 * the device's default stream. Calls return once their result is in the receive buffer as seen
 * by later work on that stream. */
typedef void* fsStream_t;

/* A buffer: host memory, or memory of the communicator's device named by its backend handle
 * (the address on cpu/CUDA, the cl_mem on OpenCL) plus a byte offset. */
typedef struct {
  void* ptr;
  size_t offset;
  int on_device; /* 0: ptr is a host address; 1: ptr is a device MemHandle */
} fsBuf;

static inline fsBuf fsHostBuf(const void* ptr) {
  fsBuf b;
  b.ptr = (void*)ptr;
  b.offset = 0;
  b.on_device = 0;
  return b;
}
static inline fsBuf fsDeviceBuf(void* handle, size_t offset) {
  fsBuf b;
  b.ptr = handle;
  b.offset = offset;
  b.on_device = 1;
  return b;
}

/* Options of fsCommInitRankConfig; fsConfigInit fills the defaults (and the env overrides). */
typedef struct {
  const char* device; /* "cpu", "cuda:0", "opencl:0"; default $FLAGSTONE_DEVICE or "cpu" */
  int64_t timeout_ms; /* per operation; default $FLAGSTONE_COMM_TIMEOUT_MS or 60000 */
  const char* algo;   /* "auto", "ring", "tree", "rhd", "direct"; default $FLAGSTONE_COMM_ALGO */
  const char* engine; /* "auto", "host", "mpi", "nccl"; default $FLAGSTONE_COMM_ENGINE */
  int use_shm; /* 1: shared memory between ranks of one host (default; FLAGSTONE_COMM_SHM=0) */
} fsConfig;

const char* fsGetErrorString(fsResult_t result);
/* The message of the last failed call on this thread ("" if none). */
const char* fsGetLastError(void);
fsResult_t fsGetVersion(int* version);
fsResult_t fsConfigInit(fsConfig* config);

/* Starts a TCP listener for rank 0 of a new communicator and describes it. Call on one rank. */
fsResult_t fsGetUniqueId(fsUniqueId* id);
/* Text form "host:port:magic" for environment variables (FLAGSTONE_COMM_ID). */
fsResult_t fsUniqueIdToString(const fsUniqueId* id, char* text, size_t capacity);
fsResult_t fsUniqueIdFromString(const char* text, fsUniqueId* id);

/* Collective over nranks processes; the rank that called fsGetUniqueId must be rank 0. */
fsResult_t fsCommInitRank(fsComm_t* comm, int nranks, fsUniqueId id, int rank);
fsResult_t fsCommInitRankConfig(fsComm_t* comm, int nranks, fsUniqueId id, int rank,
                                const fsConfig* config);
/* Initializes from the environment: FLAGSTONE_RANK/WORLD_SIZE/COMM_ID (flagstone launch), or
 * OMPI_COMM_WORLD_*, PMI_*, SLURM_* with FLAGSTONE_COMM_ROOT=host:port for the rendezvous. */
fsResult_t fsCommInitFromEnv(fsComm_t* comm, const fsConfig* config);
/* Collective over comm: ranks with the same color form a new communicator ordered by key then
 * old rank; color < 0 (FS_SPLIT_NOCOLOR) yields *newcomm = NULL. */
#define FS_SPLIT_NOCOLOR (-1)
fsResult_t fsCommSplit(fsComm_t comm, int color, int key, fsComm_t* newcomm,
                       const fsConfig* config);
fsResult_t fsCommDestroy(fsComm_t comm);
/* Safe from any thread: wakes every blocked call on comm, which then returns fsAborted; peers
 * see fsRemoteError. The comm must still be destroyed. */
fsResult_t fsCommAbort(fsComm_t comm);
/* fsSuccess while healthy, else the error that broke the communicator. */
fsResult_t fsCommGetAsyncError(fsComm_t comm, fsResult_t* async_error);
fsResult_t fsCommCount(fsComm_t comm, int* count);
fsResult_t fsCommUserRank(fsComm_t comm, int* rank);
/* The device spec ("opencl:0") of the communicator's rank. */
fsResult_t fsCommDevice(fsComm_t comm, char* spec, size_t capacity);

fsResult_t fsAllReduce(fsBuf sendbuf, fsBuf recvbuf, size_t count, fsDataType_t datatype,
                       fsRedOp_t op, fsComm_t comm, fsStream_t stream);
fsResult_t fsReduce(fsBuf sendbuf, fsBuf recvbuf, size_t count, fsDataType_t datatype, fsRedOp_t op,
                    int root, fsComm_t comm, fsStream_t stream);
fsResult_t fsBroadcast(fsBuf sendbuf, fsBuf recvbuf, size_t count, fsDataType_t datatype, int root,
                       fsComm_t comm, fsStream_t stream);
/* recvbuf holds nranks * sendcount elements, rank r's at offset r * sendcount. */
fsResult_t fsAllGather(fsBuf sendbuf, fsBuf recvbuf, size_t sendcount, fsDataType_t datatype,
                       fsComm_t comm, fsStream_t stream);
/* sendbuf holds nranks * recvcount elements; rank r receives the reduction of block r. */
fsResult_t fsReduceScatter(fsBuf sendbuf, fsBuf recvbuf, size_t recvcount, fsDataType_t datatype,
                           fsRedOp_t op, fsComm_t comm, fsStream_t stream);
fsResult_t fsGather(fsBuf sendbuf, fsBuf recvbuf, size_t sendcount, fsDataType_t datatype, int root,
                    fsComm_t comm, fsStream_t stream);
fsResult_t fsScatter(fsBuf sendbuf, fsBuf recvbuf, size_t recvcount, fsDataType_t datatype,
                     int root, fsComm_t comm, fsStream_t stream);
/* count elements go to each peer: block p of sendbuf to rank p, block p of recvbuf from p. */
fsResult_t fsAllToAll(fsBuf sendbuf, fsBuf recvbuf, size_t count, fsDataType_t datatype,
                      fsComm_t comm, fsStream_t stream);
/* Counts and displacements in elements, one per rank. */
fsResult_t fsAllToAllv(fsBuf sendbuf, const size_t* sendcounts, const size_t* sdispls,
                       fsBuf recvbuf, const size_t* recvcounts, const size_t* rdispls,
                       fsDataType_t datatype, fsComm_t comm, fsStream_t stream);
fsResult_t fsSend(fsBuf sendbuf, size_t count, fsDataType_t datatype, int peer, fsComm_t comm,
                  fsStream_t stream);
fsResult_t fsRecv(fsBuf recvbuf, size_t count, fsDataType_t datatype, int peer, fsComm_t comm,
                  fsStream_t stream);
fsResult_t fsBarrier(fsComm_t comm, fsStream_t stream);

/* Between fsGroupStart and fsGroupEnd every call (collectives, fsSend/fsRecv, fsBarrier) is
 * checked and queued, and the outermost fsGroupEnd issues them: per communicator the send/recv
 * calls together (matching pairs cannot deadlock), then the collectives in call order; different
 * communicators run concurrently, so ranks may list them in different orders (unless a rank is
 * on NCCL: then, as in NCCL, every rank must list them in one order). Results are ready
 * when fsGroupEnd returns (host path) or on the streams (NCCL). Groups nest. */
fsResult_t fsGroupStart(void);
fsResult_t fsGroupEnd(void);

#ifdef __cplusplus
}
#endif

#endif /* FLAGSTONE_COMM_H_ */
