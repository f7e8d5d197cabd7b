// Host algorithms other than the ring: call checks, binomial trees and pipelined chains for
// broadcast/reduce, direct exchanges for gather, scatter, all-to-all and point-to-point.
#include <algorithm>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "algorithms.h"
#include "reduce.h"

namespace flagstone::comm {

namespace {

int mod(int a, int n) {
  return ((a % n) + n) % n;
}

constexpr uint32_t kCallMagic = 0x46534f50;  // "FSOP"
constexpr uint32_t kP2pMagic = 0x46535032;   // "FSP2"

struct CallHeader {
  uint32_t magic = kCallMagic;
  uint32_t seq = 0;
  uint8_t kind = 0, dtype = 0, redop = 0, pad = 0;
  int32_t root = 0;
  uint64_t count = 0;
};

struct P2pHeader {
  uint32_t magic = kP2pMagic;
  uint32_t dtype = 0;
  uint64_t count = 0;
};

void compare(HostOp& op, const CallHeader& mine, const CallHeader& theirs, int peer) {
  std::string who = detail::concat(op.name, ": rank ", op.rank(), " and rank ", peer);
  if (theirs.magic != kCallMagic)
    fail(fsRemoteError, who, " are out of step: rank ", peer,
         " sent data where a call header was expected (a send/recv mismatch?)");
  if (theirs.kind != mine.kind)
    fail(fsInvalidArgument, who,
         " called different collectives: ", op_name(static_cast<OpKind>(mine.kind)), " vs ",
         op_name(static_cast<OpKind>(theirs.kind)));
  if (theirs.seq != mine.seq)
    fail(fsInvalidArgument, who, " are at different collectives: call #", mine.seq, " vs #",
         theirs.seq, " (a rank skipped or repeated a call)");
  auto fields = [](const CallHeader& h) {
    return ReductionFields{h.count, static_cast<fsDataType_t>(h.dtype),
                           static_cast<fsRedOp_t>(h.redop)};
  };
  check_same_fields(who, fields(mine), fields(theirs));
  if (theirs.root != mine.root)
    fail(fsInvalidArgument, who, " disagree on root: ", mine.root, " vs ", theirs.root);
}

}  // namespace

void check_same_fields(const std::string& who, const ReductionFields& mine,
                       const ReductionFields& theirs) {
  if (theirs.dtype != mine.dtype)
    fail(fsInvalidArgument, who, " disagree on datatype: ", dtype_name(mine.dtype), " vs ",
         dtype_name(theirs.dtype));
  if (theirs.count != mine.count)
    fail(fsInvalidArgument, who, " disagree on count: ", mine.count, " vs ", theirs.count);
  if (theirs.redop != mine.redop)
    fail(fsInvalidArgument, who, " disagree on reduction: ", redop_name(mine.redop), " vs ",
         redop_name(theirs.redop));
}

namespace {

void tree_broadcast(HostOp& op, char* buf, size_t bytes, int root) {
  int n = op.nranks(), v = mod(op.rank() - root, n);
  int mask = 1;
  while (mask < n) {
    if (v & mask) {
      op.recv(mod(v - mask + root, n), buf, bytes);
      op.wait();
      break;
    }
    mask <<= 1;
  }
  for (mask >>= 1; mask > 0; mask >>= 1)
    if (v + mask < n) op.send(mod(v + mask + root, n), buf, bytes);
  op.wait();
}

void tree_reduce(HostOp& op, char* acc, size_t count, fsDataType_t dtype, fsRedOp_t redop,
                 int root) {
  int n = op.nranks(), v = mod(op.rank() - root, n);
  size_t bytes = count * dtype_bytes(dtype);
  std::vector<char> tmp(bytes + 1);
  for (int mask = 1; mask < n; mask <<= 1) {
    if ((v & mask) == 0) {
      int src = v | mask;
      if (src < n) {
        op.recv(mod(src + root, n), tmp.data(), bytes);
        op.wait();
        reduce_into(acc, tmp.data(), count, dtype, redop);
      }
    } else {
      op.send(mod((v & ~mask) + root, n), acc, bytes);
      op.wait();
      break;
    }
  }
}

size_t chunk_elems(const HostOp& op, size_t esize) {
  return std::max<size_t>(1, op.chunk_bytes / esize);
}

// Root first, then ranks in ring order; each chunk is forwarded as soon as it arrives.
void chain_broadcast(HostOp& op, char* buf, size_t count, size_t esize, int root) {
  int n = op.nranks(), v = mod(op.rank() - root, n);
  int next = v + 1 < n ? mod(op.rank() + 1, n) : -1;
  int prev = v > 0 ? mod(op.rank() - 1, n) : -1;
  size_t step = chunk_elems(op, esize);
  for (size_t begin = 0; begin < count; begin += step) {
    size_t bytes = std::min(step, count - begin) * esize;
    char* chunk = buf + begin * esize;
    if (prev < 0) {
      op.send(next, chunk, bytes);
    } else {
      op.recv(prev, chunk, bytes, [&op, next, chunk, bytes] {
        if (next >= 0) op.send(next, chunk, bytes);
      });
    }
  }
  op.wait();
}

// The last rank of the chain starts; each rank adds its chunk and passes it towards the root.
void chain_reduce(HostOp& op, char* acc, size_t count, fsDataType_t dtype, fsRedOp_t redop,
                  int root) {
  int n = op.nranks(), v = mod(op.rank() - root, n);
  size_t esize = dtype_bytes(dtype);
  int upstream = v + 1 < n ? mod(op.rank() + 1, n) : -1;
  int downstream = v > 0 ? mod(op.rank() - 1, n) : -1;
  size_t step = chunk_elems(op, esize);
  std::vector<char> tmp(step * esize);
  for (size_t begin = 0; begin < count; begin += step) {
    size_t elems = std::min(step, count - begin);
    char* chunk = acc + begin * esize;
    if (upstream < 0) {
      op.send(downstream, chunk, elems * esize);
    } else {
      op.recv(upstream, tmp.data(), elems * esize, [&, chunk, elems] {
        reduce_into(chunk, tmp.data(), elems, dtype, redop);
        if (downstream >= 0) op.send(downstream, chunk, elems * esize);
      });
    }
  }
  op.wait();
}

bool use_tree(const HostOp& op, size_t bytes) {
  if (op.algo == Algo::kTree || op.algo == Algo::kRhd) return true;
  if (op.algo == Algo::kRing) return false;
  return bytes < (64u << 10);
}

}  // namespace

Algo parse_algo(const std::string& text) {
  if (text.empty() || text == "auto") return Algo::kAuto;
  if (text == "ring") return Algo::kRing;
  if (text == "tree") return Algo::kTree;
  if (text == "rhd" || text == "recursive-doubling") return Algo::kRhd;
  if (text == "direct") return Algo::kDirect;
  fail(fsInvalidArgument, "unknown comm algorithm '", text,
       "' (FLAGSTONE_COMM_ALGO / fsConfig.algo): use auto, ring, tree, rhd or direct");
}

const char* algo_name(Algo algo) {
  static const char* const kNames[] = {"auto", "ring", "tree", "rhd", "direct"};
  return kNames[static_cast<int>(algo)];
}

const char* op_name(OpKind kind) {
  static const char* const kNames[] = {"fsAllReduce",     "fsReduce", "fsBroadcast", "fsAllGather",
                                       "fsReduceScatter", "fsGather", "fsScatter",   "fsAllToAll",
                                       "fsAllToAllv",     "fsSend",   "fsBarrier",   "fsCommSplit",
                                       "fsRecv"};
  auto index = static_cast<size_t>(kind);
  return index < sizeof(kNames) / sizeof(kNames[0]) ? kNames[index] : "unknown-op";
}

void check_call(HostOp& op, OpKind kind, uint64_t count, fsDataType_t dtype, fsRedOp_t redop,
                int root) {
  int n = op.nranks();
  if (!op.check || n == 1) return;
  CallHeader mine;
  mine.seq = op.seq;
  mine.kind = static_cast<uint8_t>(kind);
  mine.dtype = static_cast<uint8_t>(dtype);
  mine.redop = static_cast<uint8_t>(redop);
  mine.root = root;
  mine.count = count;
  int next = mod(op.rank() + 1, n), prev = mod(op.rank() - 1, n);
  CallHeader from_prev, from_next;
  op.send(next, &mine, sizeof(mine));
  op.recv(prev, &from_prev, sizeof(from_prev));
  if (next != prev) {
    op.send(prev, &mine, sizeof(mine));
    op.recv(next, &from_next, sizeof(from_next));
  }
  op.wait();
  compare(op, mine, from_prev, prev);
  if (next != prev) compare(op, mine, from_next, next);
}

void host_reduce(HostOp& op, const void* send, void* recv, size_t count, fsDataType_t dtype,
                 fsRedOp_t redop, int root) {
  size_t esize = dtype_bytes(dtype), bytes = count * esize;
  check_call(op, OpKind::kReduce, count, dtype, redop, root);
  // Non-roots may pass no receive buffer, and the send buffer is const: reduce in a copy.
  std::vector<char> scratch;
  char* acc = static_cast<char*>(recv);
  if (op.rank() != root || !recv) {
    scratch.assign(static_cast<const char*>(send), static_cast<const char*>(send) + bytes);
    acc = scratch.data();
  } else if (send != recv) {
    std::memmove(recv, send, bytes);
  }
  fsRedOp_t step_op = redop == fsAvg ? fsSum : redop;
  if (op.nranks() > 1 && count > 0) {
    if (use_tree(op, bytes))
      tree_reduce(op, acc, count, dtype, step_op, root);
    else
      chain_reduce(op, acc, count, dtype, step_op, root);
  }
  if (op.rank() == root && redop == fsAvg) finish_average(acc, count, dtype, op.nranks());
}

void host_broadcast(HostOp& op, const void* send, void* recv, size_t count, fsDataType_t dtype,
                    int root) {
  size_t esize = dtype_bytes(dtype), bytes = count * esize;
  check_call(op, OpKind::kBroadcast, count, dtype, fsSum, root);
  if (op.rank() == root && send != recv) std::memmove(recv, send, bytes);
  if (op.nranks() == 1 || count == 0) return;
  if (use_tree(op, bytes))
    tree_broadcast(op, static_cast<char*>(recv), bytes, root);
  else
    chain_broadcast(op, static_cast<char*>(recv), count, esize, root);
}

void host_gather(HostOp& op, const void* send, void* recv, size_t count, fsDataType_t dtype,
                 int root) {
  size_t bytes = count * dtype_bytes(dtype);
  check_call(op, OpKind::kGather, count, dtype, fsSum, root);
  if (op.rank() == root) {
    char* out = static_cast<char*>(recv);
    std::memmove(out + bytes * root, send, bytes);
    for (int peer = 0; peer < op.nranks(); ++peer)
      if (peer != root) op.recv(peer, out + bytes * peer, bytes);
  } else {
    op.send(root, send, bytes);
  }
  op.wait();
}

void host_scatter(HostOp& op, const void* send, void* recv, size_t count, fsDataType_t dtype,
                  int root) {
  size_t bytes = count * dtype_bytes(dtype);
  check_call(op, OpKind::kScatter, count, dtype, fsSum, root);
  if (op.rank() == root) {
    const char* in = static_cast<const char*>(send);
    std::memmove(recv, in + bytes * root, bytes);
    for (int peer = 0; peer < op.nranks(); ++peer)
      if (peer != root) op.send(peer, in + bytes * peer, bytes);
  } else {
    op.recv(root, recv, bytes);
  }
  op.wait();
}

void host_all_to_allv(HostOp& op, const void* send, const size_t* send_counts,
                      const size_t* send_displs, void* recv, const size_t* recv_counts,
                      const size_t* recv_displs, fsDataType_t dtype) {
  size_t esize = dtype_bytes(dtype);
  int n = op.nranks(), rank = op.rank();
  check_call(op, OpKind::kAllToAllv, 0, dtype, fsSum, 0);
  const char* in = static_cast<const char*>(send);
  char* out = static_cast<char*>(recv);
  if (op.check && n > 1) {
    // Each pair agrees on how much flows between them before any data does.
    std::vector<uint64_t> mine(n), theirs(n);
    for (int peer = 0; peer < n; ++peer) {
      if (peer == rank) continue;
      mine[peer] = send_counts[peer];
      op.send(peer, &mine[peer], sizeof(uint64_t));
      op.recv(peer, &theirs[peer], sizeof(uint64_t));
    }
    op.wait();
    for (int peer = 0; peer < n; ++peer)
      if (peer != rank && theirs[peer] != recv_counts[peer])
        fail(fsInvalidArgument, op.name, ": rank ", peer, " sends ", theirs[peer],
             " elements to rank ", rank, ", which expects recvcounts[", peer,
             "]=", recv_counts[peer]);
  }
  if (send_counts[rank] != recv_counts[rank])
    fail(fsInvalidArgument, op.name, ": sendcounts[", rank, "]=", send_counts[rank],
         " differs from recvcounts[", rank, "]=", recv_counts[rank], " on rank ", rank);
  std::memmove(out + recv_displs[rank] * esize, in + send_displs[rank] * esize,
               send_counts[rank] * esize);
  // Start with the next rank and wrap, so not everyone talks to rank 0 first.
  for (int i = 1; i < n; ++i) {
    int to = mod(rank + i, n), from = mod(rank - i, n);
    op.send(to, in + send_displs[to] * esize, send_counts[to] * esize);
    op.recv(from, out + recv_displs[from] * esize, recv_counts[from] * esize);
  }
  op.wait();
}

void host_barrier(HostOp& op) {
  check_call(op, OpKind::kBarrier, 0, fsUint8, fsSum, 0);
  int n = op.nranks();
  char token = 1, sink[32];
  int round = 0;
  for (int dist = 1; dist < n; dist <<= 1, ++round) {
    op.send(mod(op.rank() + dist, n), &token, 1);
    op.recv(mod(op.rank() - dist, n), &sink[round], 1);
    op.wait();
  }
}

void host_p2p(HostOp& op, std::vector<P2p>& ops) {
  // Sends go out header-then-data in call order; receives from one peer are chained so each
  // header is checked before its data is read.
  std::vector<P2pHeader> out_headers(ops.size());
  std::vector<P2pHeader> in_headers(ops.size());
  std::map<int, std::vector<size_t>> recvs_by_peer;
  for (size_t i = 0; i < ops.size(); ++i) {
    const P2p& p = ops[i];
    if (p.peer == op.rank())
      fail(fsInvalidArgument, op.name, ": rank ", p.peer, " cannot send to or receive from itself");
    size_t bytes = p.count * dtype_bytes(p.dtype);
    if (p.send) {
      out_headers[i].dtype = p.dtype;
      out_headers[i].count = p.count;
      op.send(p.peer, &out_headers[i], sizeof(P2pHeader));
      op.send(p.peer, p.data, bytes);
    } else {
      recvs_by_peer[p.peer].push_back(i);
    }
  }
  // Chains: header k -> data k -> header k+1 for each peer.
  auto chain = std::make_shared<std::function<void(int, size_t)>>();
  *chain = [&op, &ops, &in_headers, &recvs_by_peer, chain_weak = std::weak_ptr(chain)](int peer,
                                                                                       size_t k) {
    const std::vector<size_t>& list = recvs_by_peer[peer];
    if (k >= list.size()) return;
    size_t i = list[k];
    op.recv(peer, &in_headers[i], sizeof(P2pHeader),
            [&op, &ops, &in_headers, i, peer, k, chain_weak] {
              const P2p& p = ops[i];
              const P2pHeader& h = in_headers[i];
              if (h.magic != kP2pMagic)
                fail(fsRemoteError, op.name, ": rank ", op.rank(), " expected a send from rank ",
                     peer, " but got other traffic (a collective/send mismatch?)");
              if (h.count != p.count || h.dtype != static_cast<uint32_t>(p.dtype))
                fail(fsInvalidArgument, op.name, ": rank ", peer, " sends ", h.count, " x ",
                     dtype_name(static_cast<fsDataType_t>(h.dtype)), " but rank ", op.rank(),
                     " receives ", p.count, " x ", dtype_name(p.dtype));
              op.recv(peer, p.data, p.count * dtype_bytes(p.dtype), [peer, k, chain_weak] {
                if (auto next = chain_weak.lock()) (*next)(peer, k + 1);
              });
            });
  };
  for (auto& [peer, list] : recvs_by_peer) (*chain)(peer, 0);
  op.wait();
}

}  // namespace flagstone::comm
