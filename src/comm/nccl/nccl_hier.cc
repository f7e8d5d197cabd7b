// Hierarchical all-reduce of groups that mix CUDA and other ranks: NCCL reduces inside the CUDA
// cluster, the cluster's leader and the other ranks all-reduce over the host transport with the
// leader's data staged through pinned slots on two copy streams, and NCCL broadcasts the result.
#include <algorithm>

#include "../host/reduce.h"
#include "nccl_engine.h"

namespace flagstone::comm {

namespace {

// Chunks in flight per direction: one being exchanged, the next copied out, the previous copied
// back, and one spare so a slow copy does not stall the exchange.
constexpr size_t kSlots = 4;

// Host all-reduce between the cluster leader and the non-CUDA ranks; its own sequence counter,
// because the other CUDA ranks do not take part.
ChunkBody cross_body(fsComm* comm, fsDataType_t dtype, fsRedOp_t redop) {
  return [comm, dtype, redop](const char* in, char* out, size_t n) {
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
    host_all_reduce(op, in, out, n, dtype, redop == fsAvg ? fsSum : redop);
    if (redop == fsAvg) finish_average(out, n, dtype, comm->nranks);
  };
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
                     const ChunkBody& body, cudaStream_t stream) {
  // The other ranks chunk their side exactly like this (run_elementwise with any_staged), so
  // every chunk is one matched host all-reduce.
  size_t chunk = std::max<size_t>(1, comm->config.stage_bytes / esize);
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
  if (!comm->nccl) {
    // A non-CUDA rank: only the exchange between clusters, staged like any host call.
    run_elementwise(comm, stream, &call.send, &call.recv, call.count, esize,
                    cross_body(comm, call.dtype, call.redop));
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
  if (engine.cluster_rank == 0)
    staged_exchange(comm, engine, recv.ptr, call.count, esize,
                    cross_body(comm, call.dtype, call.redop), native);
  check_nccl(api, api->Broadcast(recv.ptr, recv.ptr, call.count, type, 0, engine.comm, native),
             "ncclBroadcast", comm);
  recv.finish(stream);
  return true;
}

}  // namespace flagstone::comm
