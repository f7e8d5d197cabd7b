// The NCCL engine: CUDA ranks of a communicator form one NCCL communicator (its id travels over
// the host transport). All-CUDA groups run every call on NCCL; mixed groups run all-reduce
// hierarchically (NCCL reduce in the cluster, host all-reduce between the cluster's leader and
// the other ranks with chunked staging, NCCL broadcast back) and the rest through host staging.
#include "nccl_engine.h"

#include <algorithm>
#include <cstring>

namespace flagstone::comm {

NcclEngine::~NcclEngine() {
  watchdog.reset();  // before the communicator it may abort goes
  for (cudaEvent_t event : copied_out) cudaEventDestroy(event);
  for (cudaEvent_t event : copied_in) cudaEventDestroy(event);
  if (start) cudaEventDestroy(start);
  if (done) cudaEventDestroy(done);
  if (d2h) cudaStreamDestroy(d2h);
  if (h2d) cudaStreamDestroy(h2d);
  if (comm && !aborted) api->CommDestroy(comm);
}

namespace {

bool is_cuda(const char* device) {
  return std::strncmp(device, "cuda", 4) == 0;
}

}  // namespace

void check_cuda(cudaError_t status, const char* call, const fsComm* comm) {
  if (status == cudaSuccess) return;
  fail(fsSystemError, call, " (rank ", comm->rank, " on ", comm->config.device, "): CUDA error ",
       static_cast<int>(status), ": ", cudaGetErrorString(status));
}

void check_nccl(const NcclApi* api, ncclResult_t rc, const char* call, const fsComm* comm) {
  if (rc == ncclSuccess || rc == ncclInProgress) return;
  fsResult_t code = fsSystemError;
  if (rc == ncclInvalidArgument || rc == ncclInvalidUsage) code = fsInvalidArgument;
  if (rc == ncclRemoteError) code = fsRemoteError;
  fail(code, call, " (rank ", comm->rank, " on ", comm->config.device, "): NCCL error ",
       static_cast<int>(rc), ": ", api->GetErrorString(rc));
}

ncclDataType_t nccl_type(fsDataType_t dtype) {
  switch (dtype) {
    case fsInt8:
      return ncclInt8;
    case fsUint8:
      return ncclUint8;
    case fsInt32:
      return ncclInt32;
    case fsUint32:
      return ncclUint32;
    case fsInt64:
      return ncclInt64;
    case fsUint64:
      return ncclUint64;
    case fsFloat16:
      return ncclFloat16;
    case fsBfloat16:
      return ncclBfloat16;
    case fsFloat32:
      return ncclFloat32;
    default:
      return ncclFloat64;
  }
}

ncclRedOp_t nccl_op(fsRedOp_t op) {
  switch (op) {
    case fsProd:
      return ncclProd;
    case fsMax:
      return ncclMax;
    case fsMin:
      return ncclMin;
    case fsAvg:
      return ncclAvg;
    default:
      return ncclSum;
  }
}

DeviceArg::DeviceArg(fsComm* comm, const fsBuf* buf, size_t size, bool input,
                     const runtime::Stream& s)
    : bytes(size) {
  if (!buf) return;
  if (buf->on_device) {
    ptr = static_cast<char*>(buf->ptr) + buf->offset;
    return;
  }
  temp = runtime::Buffer::allocate(comm->device, std::max<size_t>(size, 1));
  ptr = static_cast<char*>(temp.handle());
  host = buf;
  if (input && size) {
    s.synchronize();  // the host data may come from earlier work on the stream
    runtime::copy_host_to_device(s, temp, 0, static_cast<char*>(buf->ptr) + buf->offset, size);
  }
}

void DeviceArg::finish(const runtime::Stream& s) {
  if (!host || !bytes) return;
  runtime::copy_device_to_host(s, static_cast<char*>(host->ptr) + host->offset, temp, 0, bytes);
  s.synchronize();
}

std::shared_ptr<NcclEngine> create_nccl_engine(fsComm* comm) {
  const std::string& engine_name = comm->config.engine;
  if (engine_name == "host" || engine_name == "mpi") return nullptr;
  std::vector<int> cuda;
  for (const PeerInfo& peer : comm->peers)
    if (is_cuda(peer.device)) cuda.push_back(peer.rank);
  if (cuda.empty()) {
    if (engine_name == "nccl")
      fail(fsUnsupported, "engine nccl (rank ", comm->rank, "): no rank is on a CUDA device");
    return nullptr;
  }
  // NCCL refuses two ranks on one GPU ("duplicate GPU"); such groups stage through the host
  // transport instead. Every rank sees the same table, so all decide alike without a vote.
  for (size_t i = 0; i < cuda.size(); ++i)
    for (size_t j = i + 1; j < cuda.size(); ++j) {
      const PeerInfo& a = comm->peers[cuda[i]];
      const PeerInfo& b = comm->peers[cuda[j]];
      bool same_gpu = a.host_hash == b.host_hash &&
                      (a.device_uid && b.device_uid ? a.device_uid == b.device_uid
                                                    : std::strcmp(a.device, b.device) == 0);
      if (!same_gpu) continue;
      if (engine_name == "nccl")
        fail(fsUnsupported, "engine nccl (rank ", comm->rank, "): ranks ", cuda[i], " and ",
             cuda[j], " are on the same GPU (", a.device, "), which NCCL does not allow; ",
             "give each CUDA rank its own GPU or use engine auto/host");
      return nullptr;
    }
  bool me_cuda = is_cuda(comm->config.device.c_str());
  std::string why;
  const NcclApi* api = me_cuda ? load_nccl(&why) : nullptr;
  // Everyone learns whether every CUDA rank could load NCCL, so all take the same path.
  int32_t ok = me_cuda ? (api != nullptr) : 1, all_ok = 0;
  HostOp vote{*comm->transport, Deadline::after_ms(comm->config.init_timeout_ms),
              detail::concat("NCCL setup (rank ", comm->rank, ")")};
  vote.seq = comm->seq++;
  host_all_reduce(vote, &ok, &all_ok, 1, fsInt32, fsMin);
  if (!all_ok) {
    if (engine_name == "nccl")
      fail(fsUnsupported, "engine nccl (rank ", comm->rank,
           "): NCCL is not usable on every CUDA rank", why.empty() ? "" : ": ", why);
    return nullptr;  // CUDA ranks stage through the host transport instead
  }
  int leader = cuda.front();
  comm->hierarchical = static_cast<int>(cuda.size()) < comm->nranks;
  if (comm->hierarchical) {
    comm->cross_members = {leader};
    for (const PeerInfo& peer : comm->peers)
      if (!is_cuda(peer.device)) comm->cross_members.push_back(peer.rank);
    std::sort(comm->cross_members.begin(), comm->cross_members.end());
  }
  if (!me_cuda) return nullptr;

  auto engine = std::make_shared<NcclEngine>();
  engine->api = api;
  engine->device_index = comm->device.index();
  engine->cluster = cuda;
  engine->cluster_size = static_cast<int>(cuda.size());
  engine->cluster_rank =
      static_cast<int>(std::find(cuda.begin(), cuda.end(), comm->rank) - cuda.begin());
  engine->covers_all = !comm->hierarchical;
  ncclUniqueId id;
  std::memset(&id, 0, sizeof(id));
  HostOp share{*comm->transport, Deadline::after_ms(comm->config.init_timeout_ms),
               detail::concat("NCCL id exchange (rank ", comm->rank, ")")};
  std::vector<P2p> moves;
  if (comm->rank == leader) {
    check_nccl(api, api->GetUniqueId(&id), "ncclGetUniqueId", comm);
    for (int r : cuda)
      if (r != leader) moves.push_back({true, r, &id, sizeof(id), fsUint8});
  } else {
    moves.push_back({false, leader, &id, sizeof(id), fsUint8});
  }
  host_p2p(share, moves);
  if (cudaSetDevice(comm->device.index()) != cudaSuccess)
    fail(fsSystemError, "NCCL setup (rank ", comm->rank, "): cudaSetDevice(", comm->device.index(),
         ") failed");
  check_nccl(api, api->CommInitRank(&engine->comm, engine->cluster_size, id, engine->cluster_rank),
             "ncclCommInitRank", comm);
  return engine;
}

void nccl_abort(NcclEngine& engine) {
  // From any thread (fsCommAbort, the watchdog), once.
  if (engine.comm && !engine.aborted.exchange(true)) engine.api->CommAbort(engine.comm);
}

fsResult_t nccl_async_error(NcclEngine& engine) {
  if (!engine.comm || engine.aborted) return fsSuccess;
  ncclResult_t state = ncclSuccess;
  if (engine.api->CommGetAsyncError(engine.comm, &state) != ncclSuccess) return fsSystemError;
  if (state == ncclSuccess || state == ncclInProgress) return fsSuccess;
  return state == ncclRemoteError ? fsRemoteError : fsSystemError;
}

bool nccl_run(NcclEngine& engine, fsComm* comm, const Call& call, const runtime::Stream& stream) {
  if (!engine.covers_all) return false;
  const NcclApi* api = engine.api;
  auto native = static_cast<cudaStream_t>(stream.impl().native_handle());
  size_t esize = dtype_bytes(call.dtype);
  int n = comm->nranks;
  ncclDataType_t type = nccl_type(call.dtype);
  ncclComm_t nc = engine.comm;
  bool root = comm->rank == call.root;
  switch (call.kind) {
    case OpKind::kAllReduce: {
      DeviceArg in(comm, &call.send, call.count * esize, true, stream);
      DeviceArg out(comm, &call.recv, call.count * esize, false, stream);
      check_nccl(api,
                 api->AllReduce(in.ptr, out.ptr, call.count, type, nccl_op(call.redop), nc, native),
                 "ncclAllReduce", comm);
      watch_nccl(engine, comm, native, "ncclAllReduce");
      out.finish(stream);
      return true;
    }
    case OpKind::kReduce: {
      DeviceArg in(comm, &call.send, call.count * esize, true, stream);
      DeviceArg out(comm, root ? &call.recv : nullptr, call.count * esize, false, stream);
      check_nccl(api,
                 api->Reduce(in.ptr, out.ptr, call.count, type, nccl_op(call.redop), call.root, nc,
                             native),
                 "ncclReduce", comm);
      watch_nccl(engine, comm, native, "ncclReduce");
      out.finish(stream);
      return true;
    }
    case OpKind::kBroadcast: {
      DeviceArg in(comm, root ? &call.send : nullptr, call.count * esize, true, stream);
      DeviceArg out(comm, &call.recv, call.count * esize, false, stream);
      check_nccl(api, api->Broadcast(in.ptr, out.ptr, call.count, type, call.root, nc, native),
                 "ncclBroadcast", comm);
      watch_nccl(engine, comm, native, "ncclBroadcast");
      out.finish(stream);
      return true;
    }
    case OpKind::kAllGather: {
      DeviceArg in(comm, &call.send, call.count * esize, true, stream);
      DeviceArg out(comm, &call.recv, call.count * esize * n, false, stream);
      check_nccl(api, api->AllGather(in.ptr, out.ptr, call.count, type, nc, native),
                 "ncclAllGather", comm);
      watch_nccl(engine, comm, native, "ncclAllGather");
      out.finish(stream);
      return true;
    }
    case OpKind::kReduceScatter: {
      DeviceArg in(comm, &call.send, call.count * esize * n, true, stream);
      DeviceArg out(comm, &call.recv, call.count * esize, false, stream);
      check_nccl(
          api,
          api->ReduceScatter(in.ptr, out.ptr, call.count, type, nccl_op(call.redop), nc, native),
          "ncclReduceScatter", comm);
      watch_nccl(engine, comm, native, "ncclReduceScatter");
      out.finish(stream);
      return true;
    }
    case OpKind::kGather:
    case OpKind::kScatter:
    case OpKind::kAllToAllv: {
      // Built from grouped send/recv, as NCCL itself documents.
      bool gather = call.kind == OpKind::kGather, scatter = call.kind == OpKind::kScatter;
      size_t send_extent = 0, recv_extent = 0;
      for (int r = 0; r < n; ++r) {
        if (call.kind == OpKind::kAllToAllv) {
          send_extent = std::max(send_extent, call.send_displs[r] + call.send_counts[r]);
          recv_extent = std::max(recv_extent, call.recv_displs[r] + call.recv_counts[r]);
        }
      }
      if (gather) send_extent = call.count, recv_extent = root ? call.count * n : 0;
      if (scatter) send_extent = root ? call.count * n : 0, recv_extent = call.count;
      DeviceArg in(comm, send_extent ? &call.send : nullptr, send_extent * esize, true, stream);
      DeviceArg out(comm, recv_extent ? &call.recv : nullptr, recv_extent * esize,
                    call.kind == OpKind::kAllToAllv, stream);
      check_nccl(api, api->GroupStart(), "ncclGroupStart", comm);
      for (int r = 0; r < n; ++r) {
        if (gather) {
          if (r == comm->rank) continue;
          if (root)
            check_nccl(api,
                       api->Recv(out.ptr + r * call.count * esize, call.count, type, r, nc, native),
                       "ncclRecv", comm);
        } else if (scatter) {
          if (r == comm->rank) continue;
          if (root)
            check_nccl(api,
                       api->Send(in.ptr + r * call.count * esize, call.count, type, r, nc, native),
                       "ncclSend", comm);
        } else {
          check_nccl(api,
                     api->Send(in.ptr + call.send_displs[r] * esize, call.send_counts[r], type, r,
                               nc, native),
                     "ncclSend", comm);
          check_nccl(api,
                     api->Recv(out.ptr + call.recv_displs[r] * esize, call.recv_counts[r], type, r,
                               nc, native),
                     "ncclRecv", comm);
        }
      }
      if (gather && !root)
        check_nccl(api, api->Send(in.ptr, call.count, type, call.root, nc, native), "ncclSend",
                   comm);
      if (scatter && !root)
        check_nccl(api, api->Recv(out.ptr, call.count, type, call.root, nc, native), "ncclRecv",
                   comm);
      check_nccl(api, api->GroupEnd(), "ncclGroupEnd", comm);
      watch_nccl(engine, comm, native, "grouped ncclSend/ncclRecv");
      // The root's own block moves on the device.
      if ((gather || scatter) && root && call.count) {
        size_t bytes = call.count * esize;
        char* src = gather ? in.ptr : in.ptr + comm->rank * bytes;
        char* dst = gather ? out.ptr + comm->rank * bytes : out.ptr;
        comm->device.impl().copy_on_device(stream.impl(), dst, 0, src, 0, bytes);
      }
      out.finish(stream);
      return true;
    }
    case OpKind::kBarrier: {
      // A one-element all-reduce on the stream, then wait for it: a barrier on the host.
      runtime::Buffer flag = runtime::Buffer::allocate(comm->device, sizeof(int32_t));
      check_nccl(api,
                 api->AllReduce(flag.handle(), flag.handle(), 1, ncclInt32, ncclSum, nc, native),
                 "ncclAllReduce (barrier)", comm);
      watch_nccl(engine, comm, native, "ncclAllReduce (barrier)");
      stream.synchronize();
      return true;
    }
    default:
      return false;
  }
}

bool nccl_p2p(NcclEngine& engine, fsComm* comm, const std::vector<Call>& calls,
              const runtime::Stream& stream) {
  if (!engine.covers_all) return false;
  const NcclApi* api = engine.api;
  auto native = static_cast<cudaStream_t>(stream.impl().native_handle());
  std::vector<DeviceArg> args;
  args.reserve(calls.size());
  for (const Call& call : calls) {
    bool is_send = call.kind == OpKind::kSend;
    args.emplace_back(comm, is_send ? &call.send : &call.recv, call.count * dtype_bytes(call.dtype),
                      is_send, stream);
  }
  check_nccl(api, api->GroupStart(), "ncclGroupStart", comm);
  for (size_t i = 0; i < calls.size(); ++i) {
    const Call& call = calls[i];
    ncclDataType_t type = nccl_type(call.dtype);
    if (call.kind == OpKind::kSend)
      check_nccl(api, api->Send(args[i].ptr, call.count, type, call.root, engine.comm, native),
                 "ncclSend", comm);
    else
      check_nccl(api, api->Recv(args[i].ptr, call.count, type, call.root, engine.comm, native),
                 "ncclRecv", comm);
  }
  check_nccl(api, api->GroupEnd(), "ncclGroupEnd", comm);
  watch_nccl(engine, comm, native, "grouped ncclSend/ncclRecv");
  for (size_t i = 0; i < calls.size(); ++i)
    if (calls[i].kind != OpKind::kSend) args[i].finish(stream);
  return true;
}

bool nccl_direct_call(NcclEngine& engine, fsComm* comm, const std::string& op, const void* send,
                      void* recv, size_t count, fsDataType_t dtype, fsRedOp_t redop,
                      const runtime::Stream& stream) {
  if (!engine.covers_all) return false;
  const NcclApi* api = engine.api;
  auto native = static_cast<cudaStream_t>(stream.impl().native_handle());
  ncclDataType_t type = nccl_type(dtype);
  ncclComm_t nc = engine.comm;
  if (op == "allreduce") {
    check_nccl(api, api->AllReduce(send, recv, count, type, nccl_op(redop), nc, native),
               "ncclAllReduce", comm);
  } else if (op == "allgather") {
    check_nccl(api, api->AllGather(send, recv, count, type, nc, native), "ncclAllGather", comm);
  } else if (op == "reducescatter") {
    check_nccl(api, api->ReduceScatter(send, recv, count, type, nccl_op(redop), nc, native),
               "ncclReduceScatter", comm);
  } else if (op == "broadcast") {
    check_nccl(api, api->Broadcast(send, recv, count, type, 0, nc, native), "ncclBroadcast", comm);
  } else if (op == "reduce") {
    check_nccl(api, api->Reduce(send, recv, count, type, nccl_op(redop), 0, nc, native),
               "ncclReduce", comm);
  } else if (op == "alltoall") {
    // What nccl-tests does: one grouped send and receive per peer.
    size_t block = count * dtype_bytes(dtype);
    check_nccl(api, api->GroupStart(), "ncclGroupStart", comm);
    for (int r = 0; r < comm->nranks; ++r) {
      check_nccl(api,
                 api->Send(static_cast<const char*>(send) + r * block, count, type, r, nc, native),
                 "ncclSend", comm);
      check_nccl(api, api->Recv(static_cast<char*>(recv) + r * block, count, type, r, nc, native),
                 "ncclRecv", comm);
    }
    check_nccl(api, api->GroupEnd(), "ncclGroupEnd", comm);
  } else {
    fail(fsInvalidArgument, "nccl_direct: unknown op '", op, "'");
  }
  return true;
}

}  // namespace flagstone::comm
