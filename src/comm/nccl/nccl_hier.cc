// Hierarchical all-reduce of groups that mix CUDA and other ranks: NCCL reduces inside the CUDA
// cluster, the cluster's leader and the other ranks all-reduce over the host transport with the
// leader's data staged through pinned slots on two copy streams, and NCCL broadcasts the result.
#include <algorithm>

#include "../host/arena.h"
#include "../host/reduce.h"
#include "nccl_engine.h"

namespace flagstone::comm {

namespace {

// Chunks in flight per direction: one being exchanged, the next copied out, the previous copied
// back, and one spare so a slow copy does not stall the exchange.
constexpr size_t kSlots = 4;

// The host operation between the cluster leader and the non-CUDA ranks; its own sequence
// counter, because the other CUDA ranks do not take part.
HostOp cross_op(fsComm* comm) {
  HostOp op{*comm->transport, Deadline::after_ms(comm->config.timeout_ms),
            detail::concat("fsAllReduce (rank ", comm->rank, " of ", comm->nranks,
                           ", between device clusters)")};
  op.seq = comm->cross_seq++;
  op.algo = comm->config.algo;
  op.chunk_bytes = comm->config.chunk_bytes;
  op.check = comm->config.check;
  op.members = comm->cross_members;
  op.member_index = static_cast<int>(std::find(op.members.begin(), op.members.end(), comm->rank) -
                                     op.members.begin());
  return op;
}

// Host all-reduce of one chunk between the clusters: through the shm arena when the call is
// large enough (every member decides alike from `total_bytes`), else the ring.
ChunkBody cross_body(fsComm* comm, fsDataType_t dtype, fsRedOp_t redop, size_t total_bytes) {
  return [comm, dtype, redop, total_bytes](const char* in, char* out, size_t n) {
    HostOp op = cross_op(comm);
    if (Arena* arena = arena_for(comm, op, true, total_bytes, false, nullptr))
      return arena->all_reduce(op, in, out, n, dtype, redop, comm->nranks,
                               total_bytes / dtype_bytes(dtype));
    host_all_reduce(op, in, out, n, dtype, redop == fsAvg ? fsSum : redop);
    if (redop == fsAvg) finish_average(out, n, dtype, comm->nranks);
  };
}

// The leader's side of the arena: chunks go from the device straight into its arena slot and
// come back from the result slot (the segment is registered with CUDA), on two copy streams.
class CudaArenaIo : public ArenaDevice {
 public:
  CudaArenaIo(fsComm* comm, NcclEngine& engine, char* device, size_t esize)
      : comm_(comm), engine_(engine), device_(device), esize_(esize) {}
  void copy_out(size_t index, char* slot, size_t first, size_t n) override {
    check_cuda(cudaMemcpyAsync(slot, device_ + first * esize_, n * esize_, cudaMemcpyDeviceToHost,
                               engine_.d2h),
               "cudaMemcpyAsync (device to shared memory)", comm_);
    check_cuda(cudaEventRecord(engine_.copied_out[index % kSlots], engine_.d2h), "cudaEventRecord",
               comm_);
  }
  bool out_done(size_t index) override { return done(engine_.copied_out[index % kSlots]); }
  void copy_in(size_t index, const char* result, size_t first, size_t n) override {
    check_cuda(cudaMemcpyAsync(device_ + first * esize_, result, n * esize_, cudaMemcpyHostToDevice,
                               engine_.h2d),
               "cudaMemcpyAsync (shared memory to device)", comm_);
    check_cuda(cudaEventRecord(engine_.copied_in[index % kSlots], engine_.h2d), "cudaEventRecord",
               comm_);
  }
  bool in_done(size_t index) override { return done(engine_.copied_in[index % kSlots]); }

 private:
  bool done(cudaEvent_t event) {
    cudaError_t status = cudaEventQuery(event);
    if (status == cudaErrorNotReady) return false;
    check_cuda(status, "cudaEventQuery", comm_);
    return true;
  }
  fsComm* comm_;
  NcclEngine& engine_;
  char* device_;
  size_t esize_;
};

// Registers the arena with CUDA so device copies use it directly (it is page-locked then).
ArenaPin cuda_pin(int device_index) {
  ArenaPin pin;
  pin.pin = [device_index](void* base, size_t bytes) {
    return cudaSetDevice(device_index) == cudaSuccess &&
           cudaHostRegister(base, bytes, cudaHostRegisterPortable) == cudaSuccess;
  };
  pin.unpin = [](void* base) { cudaHostUnregister(base); };
  return pin;
}

void create_pipeline(fsComm* comm, NcclEngine& engine) {
  if (engine.d2h) return;
  check_cuda(cudaStreamCreateWithFlags(&engine.d2h, cudaStreamNonBlocking), "cudaStreamCreate",
             comm);
  check_cuda(cudaStreamCreateWithFlags(&engine.h2d, cudaStreamNonBlocking), "cudaStreamCreate",
             comm);
  auto make_event = [&](cudaEvent_t* event) {
    check_cuda(cudaEventCreateWithFlags(event, cudaEventDisableTiming), "cudaEventCreate", comm);
  };
  make_event(&engine.start);
  make_event(&engine.done);
  engine.copied_out.assign(kSlots, nullptr);
  engine.copied_in.assign(kSlots, nullptr);
  for (size_t i = 0; i < kSlots; ++i) {
    make_event(&engine.copied_out[i]);
    make_event(&engine.copied_in[i]);
  }
}

}  // namespace

void staged_exchange(fsComm* comm, NcclEngine& engine, char* device, size_t count, size_t esize,
                     const ChunkBody& body, cudaStream_t stream, size_t chunk_bytes) {
  // The other ranks chunk their side exactly like this (run_elementwise with any_staged), so
  // every chunk is one matched host all-reduce.
  size_t chunk = std::max<size_t>(1, chunk_bytes / esize);
  if (count == 0) {
    body(nullptr, nullptr, 0);
    return;
  }
  check_cuda(cudaSetDevice(engine.device_index), "cudaSetDevice", comm);
  create_pipeline(comm, engine);
  size_t chunks = (count + chunk - 1) / chunk;
  size_t slots = std::min(kSlots, chunks);
  size_t slot_bytes = chunk * esize;
  if (!engine.pinned || engine.pinned->size() < slots * slot_bytes) {
    engine.pinned.reset();  // give the old slots back before taking bigger ones
    engine.pinned = std::make_unique<runtime::PinnedHostBuffer>(comm->device, slots * slot_bytes);
  }
  char* host = static_cast<char*>(engine.pinned->data());
  auto elements = [&](size_t i) { return std::min(chunk, count - i * chunk); };
  auto slot_of = [&](size_t i) { return host + (i % slots) * slot_bytes; };
  auto copy_out = [&](size_t i) {
    size_t slot = i % slots;
    // The slot is free once the chunk that used it before has reached the device.
    if (i >= slots)
      check_cuda(cudaStreamWaitEvent(engine.d2h, engine.copied_in[slot], 0), "cudaStreamWaitEvent",
                 comm);
    check_cuda(cudaMemcpyAsync(slot_of(i), device + i * slot_bytes, elements(i) * esize,
                               cudaMemcpyDeviceToHost, engine.d2h),
               "cudaMemcpyAsync (device to host)", comm);
    check_cuda(cudaEventRecord(engine.copied_out[slot], engine.d2h), "cudaEventRecord", comm);
  };
  // The copies start after the work already queued on the caller's stream (the NCCL reduce).
  check_cuda(cudaEventRecord(engine.start, stream), "cudaEventRecord", comm);
  check_cuda(cudaStreamWaitEvent(engine.d2h, engine.start, 0), "cudaStreamWaitEvent", comm);
  check_cuda(cudaStreamWaitEvent(engine.h2d, engine.start, 0), "cudaStreamWaitEvent", comm);
  for (size_t i = 0; i < slots; ++i) copy_out(i);
  for (size_t i = 0; i < chunks; ++i) {
    size_t slot = i % slots;
    check_cuda(cudaEventSynchronize(engine.copied_out[slot]), "cudaEventSynchronize", comm);
    body(slot_of(i), slot_of(i), elements(i));
    check_cuda(cudaMemcpyAsync(device + i * slot_bytes, slot_of(i), elements(i) * esize,
                               cudaMemcpyHostToDevice, engine.h2d),
               "cudaMemcpyAsync (host to device)", comm);
    check_cuda(cudaEventRecord(engine.copied_in[slot], engine.h2d), "cudaEventRecord", comm);
    if (i + slots < chunks) copy_out(i + slots);
  }
  check_cuda(cudaEventRecord(engine.done, engine.h2d), "cudaEventRecord", comm);
  check_cuda(cudaStreamWaitEvent(stream, engine.done, 0), "cudaStreamWaitEvent", comm);
}

bool hierarchical_all_reduce(fsComm* comm, const Call& call, const runtime::Stream& stream) {
  if (!comm->hierarchical || call.kind != OpKind::kAllReduce) return false;
  size_t esize = dtype_bytes(call.dtype), bytes = call.count * esize;
  // Every member chunks the exchange alike: the arena's chunk when it is wanted, else staging's.
  size_t chunk_bytes =
      arena_chunk_bytes(comm, static_cast<int>(comm->cross_members.size()), bytes, esize);
  if (!chunk_bytes) chunk_bytes = comm->config.stage_bytes;
  if (!comm->nccl) {
    // A non-CUDA rank: only the exchange between clusters, staged like any host call.
    run_elementwise(comm, stream, &call.send, &call.recv, call.count, esize,
                    cross_body(comm, call.dtype, call.redop, bytes), chunk_bytes);
    return true;
  }
  NcclEngine& engine = *comm->nccl;
  const NcclApi* api = engine.api;
  auto native = static_cast<cudaStream_t>(stream.impl().native_handle());
  DeviceArg send(comm, &call.send, bytes, true, stream);
  DeviceArg recv(comm, &call.recv, bytes, false, stream);
  ncclDataType_t type = nccl_type(call.dtype);
  ncclRedOp_t inner = call.redop == fsAvg ? ncclSum : nccl_op(call.redop);
  check_nccl(api, api->Reduce(send.ptr, recv.ptr, call.count, type, inner, 0, engine.comm, native),
             "ncclReduce", comm);
  watch_nccl(engine, comm, native, "ncclReduce (inside the CUDA cluster)");
  if (engine.cluster_rank == 0) {
    HostOp op = cross_op(comm);
    ArenaPin pin = cuda_pin(engine.device_index);
    Arena* arena = nullptr;
    if (call.count > 0) {
      check_cuda(cudaSetDevice(engine.device_index), "cudaSetDevice", comm);
      create_pipeline(comm, engine);
      arena = arena_for(comm, op, true, bytes, true, &pin);
    }
    if (arena) {
      // The copies start after the NCCL reduce on the caller's stream; later work waits for
      // the last copy back.
      check_cuda(cudaEventRecord(engine.start, native), "cudaEventRecord", comm);
      check_cuda(cudaStreamWaitEvent(engine.d2h, engine.start, 0), "cudaStreamWaitEvent", comm);
      check_cuda(cudaStreamWaitEvent(engine.h2d, engine.start, 0), "cudaStreamWaitEvent", comm);
      // The other members run one host operation per staging chunk (run_elementwise): keep
      // the call counter in step with theirs.
      size_t per = std::max<size_t>(1, chunk_bytes / esize);
      comm->cross_seq += static_cast<uint32_t>((call.count + per - 1) / per - 1);
      CudaArenaIo io(comm, engine, recv.ptr, esize);
      arena->all_reduce(op, io, call.count, call.dtype, call.redop);
      check_cuda(cudaEventRecord(engine.done, engine.h2d), "cudaEventRecord", comm);
      check_cuda(cudaStreamWaitEvent(native, engine.done, 0), "cudaStreamWaitEvent", comm);
    } else {
      --comm->cross_seq;  // the ring path takes its own host operations per chunk
      staged_exchange(comm, engine, recv.ptr, call.count, esize,
                      cross_body(comm, call.dtype, call.redop, bytes), native, chunk_bytes);
    }
  }
  check_nccl(api, api->Broadcast(recv.ptr, recv.ptr, call.count, type, 0, engine.comm, native),
             "ncclBroadcast", comm);
  watch_nccl(engine, comm, native, "ncclBroadcast (inside the CUDA cluster)");
  recv.finish(stream);
  return true;
}

}  // namespace flagstone::comm
