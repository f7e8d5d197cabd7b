// The collective and point-to-point entry points of the C API: argument checks that name the
// rank/op/argument at fault, dispatch to a native engine when it serves the call, else the host
// algorithms over staged or in-place buffers. Groups of send/recv run together at fsGroupEnd.
#include <algorithm>
#include <cstring>
#include <exception>
#include <functional>
#include <thread>
#include <vector>

#include "engines.h"
#include "host/arena.h"
#include "staging.h"
#include "tuner.h"

using namespace flagstone::comm;
namespace runtime = flagstone::runtime;

namespace {

std::string where(fsComm* comm, OpKind kind) {
  return flagstone::detail::concat(op_name(kind), " (rank ", comm->rank, " of ", comm->nranks, ")");
}

void check_common(fsComm* comm, OpKind kind, int dtype) {
  check_usable(comm, op_name(kind));
  if (!valid_dtype(dtype))
    fail(fsInvalidArgument, where(comm, kind), ": datatype ", dtype, " is not an fsDataType_t (0..",
         fsNumTypes - 1, ")");
}

void check_redop(fsComm* comm, OpKind kind, int redop) {
  if (!valid_redop(redop))
    fail(fsInvalidArgument, where(comm, kind), ": reduction ", redop, " is not an fsRedOp_t (0..",
         fsNumOps - 1, ")");
}

void check_root(fsComm* comm, OpKind kind, int root, const char* what = "root") {
  if (root < 0 || root >= comm->nranks)
    fail(fsInvalidArgument, where(comm, kind), ": ", what, " ", root, " is outside [0, ",
         comm->nranks, ")");
}

void check_buf(fsComm* comm, OpKind kind, const fsBuf& buf, size_t count, const char* name) {
  if (count > 0 && !buf.ptr)
    fail(fsInvalidArgument, where(comm, kind), ": ", name, " is NULL with count ", count);
  if (buf.on_device != 0 && buf.on_device != 1)
    fail(fsInvalidArgument, where(comm, kind), ": ", name, ".on_device must be 0 or 1");
  if (count > (size_t{1} << 56))
    fail(fsInvalidArgument, where(comm, kind), ": count ", count, " of ", name,
         " is implausibly large (negative value cast to size_t?)");
}

// The checks of a reduction's arguments before anything moves.
void check_reduction(fsComm* comm, OpKind kind, int dtype, int redop, const fsBuf& sendbuf,
                     const fsBuf* recvbuf, size_t count) {
  check_common(comm, kind, dtype);
  check_redop(comm, kind, redop);
  check_buf(comm, kind, sendbuf, count, "sendbuf");
  if (recvbuf) check_buf(comm, kind, *recvbuf, count, "recvbuf");
}

// The checks of a call with a root that alone sends (broadcast, scatter) or alone receives
// (gather); true on the root.
bool check_rooted(fsComm* comm, OpKind kind, int dtype, int root, const fsBuf& sendbuf,
                  const fsBuf& recvbuf, size_t count, bool root_sends) {
  check_common(comm, kind, dtype);
  check_root(comm, kind, root);
  bool is_root = comm->rank == root;
  if (is_root || !root_sends) check_buf(comm, kind, sendbuf, count, "sendbuf");
  if (is_root || root_sends) check_buf(comm, kind, recvbuf, count, "recvbuf");
  return is_root;
}

// Runs one operation under the comm's lock; any failure after validation breaks the comm (the
// peers are mid-protocol) and is recorded as its async error.
template <typename Body>
void run_op(fsComm* comm, const Body& body) {
  std::lock_guard<std::mutex> lock(comm->mutex);
  try {
    body();
  } catch (const CommError& error) {
    mark_failed(comm, error.code());
    throw;
  } catch (...) {
    mark_failed(comm, fsInternalError);
    throw;
  }
}

bool try_engines(fsComm* comm, const Call& call, const runtime::Stream& stream) {
  (void)comm;
  (void)call;
  (void)stream;
#ifdef FLAGSTONE_COMM_NCCL
  if (comm->nccl && nccl_run(*comm->nccl, comm, call, stream)) return true;
#endif
#ifdef FLAGSTONE_COMM_MPI
  if (comm->mpi && mpi_run(*comm->mpi, comm, call)) return true;
#endif
  return false;
}

// A host operation with the algorithm the tuner (or the cost model) picks for `bytes`.
HostOp tuned_host_op(fsComm* comm, OpKind kind, size_t bytes) {
  Algo algo = tuned_algo(comm, kind, bytes);
  HostOp host = make_host_op(comm, kind);
  host.algo = algo;
  return host;
}

// Group state of this thread: every call between fsGroupStart and the outermost fsGroupEnd is
// queued (arguments already checked) and issued at fsGroupEnd, NCCL-style.
struct QueuedP2p {
  fsComm* comm;
  Call call;
  runtime::Stream stream;
};
struct Queued {
  fsComm* comm = nullptr;
  bool p2p = false;
  // Device buffers only and no host synchronization inside: NCCL may defer it to ncclGroupEnd.
  bool device_only = false;
  QueuedP2p item;             // p2p only
  std::function<void()> run;  // collectives: the whole operation, run under the comm's lock
};
struct GroupState {
  int depth = 0;
  std::vector<Queued> queued;
};
thread_local GroupState t_group;

// Runs a collective now, or queues it when a group is open.
template <typename Body>
void submit(fsComm* comm, Body body, bool device_only = false) {
  if (t_group.depth > 0) {
    Queued queued;
    queued.comm = comm;
    queued.device_only = device_only;
    queued.run = [comm, body] { run_op(comm, body); };
    t_group.queued.push_back(std::move(queued));
    return;
  }
  run_op(comm, body);
}

void run_p2p(fsComm* comm, std::vector<QueuedP2p>& items) {
  run_op(comm, [&] {
#ifdef FLAGSTONE_COMM_NCCL
    // NCCL groups its own send/recv (all-CUDA comms); it takes all of them or none.
    if (comm->nccl) {
      std::vector<Call> calls;
      for (const QueuedP2p& item : items) calls.push_back(item.call);
      if (nccl_p2p(*comm->nccl, comm, calls, items.front().stream)) return;
    }
#endif
    size_t n = items.size();
    std::vector<std::vector<char>> host(n);
    std::vector<P2p> ops(n);
    for (size_t i = 0; i < n; ++i) {
      const Call& call = items[i].call;
      size_t bytes = call.count * dtype_bytes(call.dtype);
      const fsBuf& buf = call.kind == OpKind::kSend ? call.send : call.recv;
      View view = view_of(comm, buf);
      ops[i] = {call.kind == OpKind::kSend, call.root, view.host, call.count, call.dtype};
      if (view.staged) {
        host[i].resize(bytes + 1);
        ops[i].data = host[i].data();
        if (ops[i].send)
          comm->device.impl().copy_to_host(items[i].stream.impl(), host[i].data(), buf.ptr,
                                           buf.offset, bytes);
      }
      items[i].stream.synchronize();
    }
    HostOp op = make_host_op(comm, OpKind::kSend);
    host_p2p(op, ops);
    for (size_t i = 0; i < n; ++i)
      if (!ops[i].send && !host[i].empty())
        comm->device.impl().copy_to_device(items[i].stream.impl(), items[i].call.recv.ptr,
                                           items[i].call.recv.offset, host[i].data(),
                                           ops[i].count * dtype_bytes(ops[i].dtype));
  });
}

fsResult_t queue_p2p(fsComm* comm, const Call& call, fsStream_t stream) {
  return guard([&] {
    OpKind kind = call.kind;
    check_common(comm, kind, call.dtype);
    check_root(comm, kind, call.root, "peer");
    if (call.root == comm->rank)
      fail(fsInvalidArgument, where(comm, kind), ": peer ", call.root,
           " is this rank itself; copy locally instead");
    check_buf(comm, kind, kind == OpKind::kSend ? call.send : call.recv, call.count,
              kind == OpKind::kSend ? "sendbuf" : "recvbuf");
    QueuedP2p item{comm, call, resolve_stream(comm, stream, op_name(kind))};
    if (t_group.depth > 0) {
      Queued queued;
      queued.comm = comm;
      queued.p2p = true;
      queued.device_only = call.kind == OpKind::kSend ? call.send.on_device : call.recv.on_device;
      queued.item = item;
      t_group.queued.push_back(std::move(queued));
      return;
    }
    std::vector<QueuedP2p> one = {item};
    run_p2p(comm, one);
  });
}

// Issues a closed group. Per communicator, the send/recv calls run as one batch (so matching
// pairs cannot deadlock), then the collectives in call order. Communicators run concurrently,
// one thread each: ranks may list them in different orders, as NCCL allows inside a group.
void run_group(std::vector<Queued>& queued) {
  std::vector<std::pair<fsComm*, std::vector<Queued*>>> by_comm;
  for (Queued& entry : queued) {
    auto it = std::find_if(by_comm.begin(), by_comm.end(),
                           [&](const auto& group) { return group.first == entry.comm; });
    if (it == by_comm.end()) {
      by_comm.push_back({entry.comm, {}});
      it = by_comm.end() - 1;
    }
    it->second.push_back(&entry);
  }
  auto run_comm = [](fsComm* comm, const std::vector<Queued*>& entries) {
    check_usable(comm, "fsGroupEnd");
    std::vector<QueuedP2p> p2p;
    for (Queued* entry : entries)
      if (entry->p2p) p2p.push_back(entry->item);
    if (!p2p.empty()) run_p2p(comm, p2p);
    for (Queued* entry : entries)
      if (!entry->p2p) entry->run();
  };
  // NCCL queues its kernels on the caller's streams, so concurrent issue could order two comms'
  // kernels differently on different ranks and hang the GPUs: with NCCL in the group, the
  // communicators go one after the other in first-call order, as NCCL programs must list them.
  bool sequential = by_comm.size() == 1;
#ifdef FLAGSTONE_COMM_NCCL
  for (const auto& group : by_comm) sequential = sequential || group.first->nccl != nullptr;
#endif
  if (sequential) {
#ifdef FLAGSTONE_COMM_NCCL
    // Every comm on NCCL and every call on device memory: one NCCL group around all of them,
    // so NCCL launches them together (host buffers need copies ordered after each call).
    bool grouped = true;
    for (const auto& group : by_comm) grouped = grouped && nccl_covers_all(group.first);
    for (const Queued& entry : queued) grouped = grouped && entry.device_only;
    if (grouped && nccl_group_start(by_comm.front().first)) {
      try {
        for (const auto& group : by_comm) run_comm(group.first, group.second);
      } catch (...) {
        try {
          nccl_group_end(by_comm.front().first);
        } catch (...) {  // the first error is the one to report
        }
        throw;
      }
      nccl_group_end(by_comm.front().first);
      return;
    }
#endif
    for (const auto& group : by_comm) run_comm(group.first, group.second);
    return;
  }
  std::vector<std::exception_ptr> errors(by_comm.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < by_comm.size(); ++i)
    threads.emplace_back([&, i] {
      try {
        run_comm(by_comm[i].first, by_comm[i].second);
      } catch (...) {
        errors[i] = std::current_exception();
      }
    });
  for (std::thread& thread : threads) thread.join();
  for (std::exception_ptr& error : errors)
    if (error) std::rethrow_exception(error);
}

}  // namespace

extern "C" {

fsResult_t fsAllReduce(fsBuf sendbuf, fsBuf recvbuf, size_t count, fsDataType_t datatype,
                       fsRedOp_t op, fsComm_t comm, fsStream_t stream) {
  return guard([&] {
    check_reduction(comm, OpKind::kAllReduce, datatype, op, sendbuf, &recvbuf, count);
    runtime::Stream s = resolve_stream(comm, stream, "fsAllReduce");
    Call call{OpKind::kAllReduce, sendbuf, recvbuf, count, datatype, op};
    submit(
        comm,
        [=] {
#ifdef FLAGSTONE_COMM_NCCL
          if (hierarchical_all_reduce(comm, call, s)) return;
#endif
          if (try_engines(comm, call, s)) return;
          size_t esize = dtype_bytes(datatype);
          // Staged ranks feed the arena in its own chunks (0: not the arena; staging chunks).
          size_t chunk = arena_chunk_bytes(comm, comm->nranks, count * esize, esize);
          run_elementwise(
              comm, s, &sendbuf, &recvbuf, count, esize,
              [&](const char* in, char* out, size_t n) {
                HostOp host = make_host_op(comm, OpKind::kAllReduce);
                if (Arena* arena = arena_for(comm, host, false, count * esize, false, nullptr))
                  return arena->all_reduce(host, in, out, n, datatype, op, comm->nranks, count);
                host.algo = tuned_algo(comm, OpKind::kAllReduce, n * esize);
                host_all_reduce(host, in, out, n, datatype, op);
              },
              chunk);
        },
        sendbuf.on_device && recvbuf.on_device);
  });
}

fsResult_t fsReduce(fsBuf sendbuf, fsBuf recvbuf, size_t count, fsDataType_t datatype, fsRedOp_t op,
                    int root, fsComm_t comm, fsStream_t stream) {
  return guard([&] {
    check_reduction(comm, OpKind::kReduce, datatype, op, sendbuf, nullptr, count);
    check_root(comm, OpKind::kReduce, root);
    bool is_root = comm->rank == root;
    if (is_root) check_buf(comm, OpKind::kReduce, recvbuf, count, "recvbuf");
    runtime::Stream s = resolve_stream(comm, stream, "fsReduce");
    Call call{OpKind::kReduce, sendbuf, recvbuf, count, datatype, op, root};
    submit(
        comm,
        [=] {
          if (try_engines(comm, call, s)) return;
          run_elementwise(comm, s, &sendbuf, is_root ? &recvbuf : nullptr, count,
                          dtype_bytes(datatype), [&](const char* in, char* out, size_t n) {
                            HostOp host =
                                tuned_host_op(comm, OpKind::kReduce, n * dtype_bytes(datatype));
                            host_reduce(host, in, out, n, datatype, op, root);
                          });
        },
        sendbuf.on_device && (!is_root || recvbuf.on_device));
  });
}

fsResult_t fsBroadcast(fsBuf sendbuf, fsBuf recvbuf, size_t count, fsDataType_t datatype, int root,
                       fsComm_t comm, fsStream_t stream) {
  return guard([&] {
    bool is_root =
        check_rooted(comm, OpKind::kBroadcast, datatype, root, sendbuf, recvbuf, count, true);
    runtime::Stream s = resolve_stream(comm, stream, "fsBroadcast");
    Call call{OpKind::kBroadcast, sendbuf, recvbuf, count, datatype, fsSum, root};
    submit(
        comm,
        [=] {
          if (try_engines(comm, call, s)) return;
          run_elementwise(comm, s, is_root ? &sendbuf : nullptr, &recvbuf, count,
                          dtype_bytes(datatype), [&](const char* in, char* out, size_t n) {
                            HostOp host =
                                tuned_host_op(comm, OpKind::kBroadcast, n * dtype_bytes(datatype));
                            host_broadcast(host, in, out, n, datatype, root);
                          });
        },
        (!is_root || sendbuf.on_device) && recvbuf.on_device);
  });
}

fsResult_t fsAllGather(fsBuf sendbuf, fsBuf recvbuf, size_t sendcount, fsDataType_t datatype,
                       fsComm_t comm, fsStream_t stream) {
  return guard([&] {
    check_common(comm, OpKind::kAllGather, datatype);
    check_buf(comm, OpKind::kAllGather, sendbuf, sendcount, "sendbuf");
    check_buf(comm, OpKind::kAllGather, recvbuf, sendcount, "recvbuf");
    runtime::Stream s = resolve_stream(comm, stream, "fsAllGather");
    Call call{OpKind::kAllGather, sendbuf, recvbuf, sendcount, datatype};
    size_t bytes = sendcount * dtype_bytes(datatype);
    submit(
        comm,
        [=] {
          if (try_engines(comm, call, s)) return;
          run_whole(comm, s, &sendbuf, bytes, &recvbuf, bytes * comm->nranks,
                    [&](const char* in, char* out) {
                      HostOp host = tuned_host_op(comm, OpKind::kAllGather, bytes * comm->nranks);
                      host_all_gather(host, in, out, sendcount, datatype);
                    });
        },
        sendbuf.on_device && recvbuf.on_device);
  });
}

fsResult_t fsReduceScatter(fsBuf sendbuf, fsBuf recvbuf, size_t recvcount, fsDataType_t datatype,
                           fsRedOp_t op, fsComm_t comm, fsStream_t stream) {
  return guard([&] {
    check_reduction(comm, OpKind::kReduceScatter, datatype, op, sendbuf, &recvbuf, recvcount);
    runtime::Stream s = resolve_stream(comm, stream, "fsReduceScatter");
    Call call{OpKind::kReduceScatter, sendbuf, recvbuf, recvcount, datatype, op};
    size_t bytes = recvcount * dtype_bytes(datatype);
    submit(
        comm,
        [=] {
          if (try_engines(comm, call, s)) return;
          run_whole(comm, s, &sendbuf, bytes * comm->nranks, &recvbuf, bytes,
                    [&](const char* in, char* out) {
                      HostOp host = make_host_op(comm, OpKind::kReduceScatter);
                      host_reduce_scatter(host, in, out, recvcount, datatype, op);
                    });
        },
        sendbuf.on_device && recvbuf.on_device);
  });
}

fsResult_t fsGather(fsBuf sendbuf, fsBuf recvbuf, size_t sendcount, fsDataType_t datatype, int root,
                    fsComm_t comm, fsStream_t stream) {
  return guard([&] {
    bool is_root =
        check_rooted(comm, OpKind::kGather, datatype, root, sendbuf, recvbuf, sendcount, false);
    runtime::Stream s = resolve_stream(comm, stream, "fsGather");
    Call call{OpKind::kGather, sendbuf, recvbuf, sendcount, datatype, fsSum, root};
    size_t bytes = sendcount * dtype_bytes(datatype);
    submit(comm, [=] {
      if (try_engines(comm, call, s)) return;
      run_whole(comm, s, &sendbuf, bytes, is_root ? &recvbuf : nullptr, bytes * comm->nranks,
                [&](const char* in, char* out) {
                  HostOp host = make_host_op(comm, OpKind::kGather);
                  host_gather(host, in, out, sendcount, datatype, root);
                });
    });
  });
}

fsResult_t fsScatter(fsBuf sendbuf, fsBuf recvbuf, size_t recvcount, fsDataType_t datatype,
                     int root, fsComm_t comm, fsStream_t stream) {
  return guard([&] {
    bool is_root =
        check_rooted(comm, OpKind::kScatter, datatype, root, sendbuf, recvbuf, recvcount, true);
    runtime::Stream s = resolve_stream(comm, stream, "fsScatter");
    Call call{OpKind::kScatter, sendbuf, recvbuf, recvcount, datatype, fsSum, root};
    size_t bytes = recvcount * dtype_bytes(datatype);
    submit(comm, [=] {
      if (try_engines(comm, call, s)) return;
      run_whole(comm, s, is_root ? &sendbuf : nullptr, bytes * comm->nranks, &recvbuf, bytes,
                [&](const char* in, char* out) {
                  HostOp host = make_host_op(comm, OpKind::kScatter);
                  host_scatter(host, in, out, recvcount, datatype, root);
                });
    });
  });
}

fsResult_t fsAllToAllv(fsBuf sendbuf, const size_t* sendcounts, const size_t* sdispls,
                       fsBuf recvbuf, const size_t* recvcounts, const size_t* rdispls,
                       fsDataType_t datatype, fsComm_t comm, fsStream_t stream) {
  return guard([&] {
    check_common(comm, OpKind::kAllToAllv, datatype);
    if (!sendcounts || !sdispls || !recvcounts || !rdispls)
      fail(fsInvalidArgument, where(comm, OpKind::kAllToAllv),
           ": sendcounts, sdispls, recvcounts and rdispls must all be non-NULL");
    size_t send_extent = 0, recv_extent = 0;
    for (int r = 0; r < comm->nranks; ++r) {
      send_extent = std::max(send_extent, sdispls[r] + sendcounts[r]);
      recv_extent = std::max(recv_extent, rdispls[r] + recvcounts[r]);
    }
    check_buf(comm, OpKind::kAllToAllv, sendbuf, send_extent, "sendbuf");
    check_buf(comm, OpKind::kAllToAllv, recvbuf, recv_extent, "recvbuf");
    runtime::Stream s = resolve_stream(comm, stream, "fsAllToAllv");
    // Copies of the count and displacement arrays: a grouped call runs after the caller's arrays
    // may be gone (fsAllToAll's are temporaries).
    size_t n = static_cast<size_t>(comm->nranks);
    std::vector<size_t> lists(4 * n);
    std::copy(sendcounts, sendcounts + n, lists.begin());
    std::copy(sdispls, sdispls + n, lists.begin() + n);
    std::copy(recvcounts, recvcounts + n, lists.begin() + 2 * n);
    std::copy(rdispls, rdispls + n, lists.begin() + 3 * n);
    size_t esize = dtype_bytes(datatype);
    submit(comm, [=] {
      const size_t* sc = lists.data();
      const size_t *sd = sc + n, *rc = sc + 2 * n, *rd = sc + 3 * n;
      Call call{OpKind::kAllToAllv, sendbuf, recvbuf, 0, datatype, fsSum, 0, sc, sd, rc, rd};
      if (try_engines(comm, call, s)) return;
      run_whole(
          comm, s, &sendbuf, send_extent * esize, &recvbuf, recv_extent * esize,
          [&](const char* in, char* out) {
            HostOp host = make_host_op(comm, OpKind::kAllToAllv);
            host_all_to_allv(host, in, sc, sd, out, rc, rd, datatype);
          },
          true);
    });
  });
}

fsResult_t fsAllToAll(fsBuf sendbuf, fsBuf recvbuf, size_t count, fsDataType_t datatype,
                      fsComm_t comm, fsStream_t stream) {
  if (!comm) {
    set_last_error("fsAllToAll: comm is NULL");
    return fsInvalidArgument;
  }
  std::vector<size_t> counts(comm->nranks, count), displs(comm->nranks);
  for (int r = 0; r < comm->nranks; ++r) displs[r] = count * r;
  return fsAllToAllv(sendbuf, counts.data(), displs.data(), recvbuf, counts.data(), displs.data(),
                     datatype, comm, stream);
}

fsResult_t fsSend(fsBuf sendbuf, size_t count, fsDataType_t datatype, int peer, fsComm_t comm,
                  fsStream_t stream) {
  Call call{OpKind::kSend, sendbuf, fsBuf{}, count, datatype, fsSum, peer};
  return queue_p2p(comm, call, stream);
}

fsResult_t fsRecv(fsBuf recvbuf, size_t count, fsDataType_t datatype, int peer, fsComm_t comm,
                  fsStream_t stream) {
  Call call{OpKind::kRecv, fsBuf{}, recvbuf, count, datatype, fsSum, peer};
  return queue_p2p(comm, call, stream);
}

fsResult_t fsBarrier(fsComm_t comm, fsStream_t stream) {
  return guard([&] {
    check_usable(comm, "fsBarrier");
    runtime::Stream s = resolve_stream(comm, stream, "fsBarrier");
    Call call{OpKind::kBarrier};
    submit(comm, [=] {
      s.synchronize();
      if (try_engines(comm, call, s)) return;
      HostOp host = make_host_op(comm, OpKind::kBarrier);
      host_barrier(host);
    });
  });
}

fsResult_t fsGroupStart(void) {
  ++t_group.depth;
  return fsSuccess;
}

fsResult_t fsGroupEnd(void) {
  return guard([&] {
    if (t_group.depth == 0) fail(fsInvalidUsage, "fsGroupEnd without fsGroupStart");
    if (--t_group.depth > 0) return;
    std::vector<Queued> queued = std::move(t_group.queued);
    t_group.queued.clear();
    run_group(queued);
  });
}

}  // extern "C"
