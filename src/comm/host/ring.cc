// The pipelined ring (reduce-scatter then all-gather, chunk by chunk, so a chunk moves on to the
// next rank as soon as it is reduced) and recursive doubling for small all-reduces.
#include <algorithm>
#include <cstring>
#include <vector>

#include "algorithms.h"
#include "reduce.h"

namespace flagstone::comm {

namespace {

int mod(int a, int n) {
  return ((a % n) + n) % n;
}

// Segments of the ring (in elements) and the chunking that every segment shares: all segments
// have the same number of chunks, so "chunk c of step g feeds chunk c of step g+1" holds.
struct RingPlan {
  std::vector<size_t> offset, length;
  int chunks = 1;
  size_t chunk_begin(int seg, int c) const { return offset[seg] + length[seg] * c / chunks; }
  size_t chunk_end(int seg, int c) const { return offset[seg] + length[seg] * (c + 1) / chunks; }
};

RingPlan make_plan(std::vector<size_t> offset, std::vector<size_t> length, size_t esize,
                   size_t chunk_bytes) {
  RingPlan plan{std::move(offset), std::move(length), 1};
  size_t longest = *std::max_element(plan.length.begin(), plan.length.end());
  size_t chunk_elems = std::max<size_t>(1, chunk_bytes / esize);
  plan.chunks = static_cast<int>(std::max<size_t>(1, (longest + chunk_elems - 1) / chunk_elems));
  return plan;
}

// Runs reduce-scatter steps (if `reduce`) then all-gather steps (if `gather`) over `buf`; `owned`
// is the segment this rank holds complete after reduce-scatter (or from the start if gathering
// only). fsAvg is finished on the owned segment before it is gathered.
class Ring {
 public:
  Ring(HostOp& op, char* buf, const RingPlan& plan, size_t esize, fsDataType_t dtype,
       fsRedOp_t redop, bool reduce, bool gather, int owned)
      : op_(op),
        buf_(buf),
        plan_(plan),
        esize_(esize),
        dtype_(dtype),
        redop_(redop),
        n_(op.nranks()),
        owned_(owned) {
    rs_steps_ = reduce ? n_ - 1 : 0;
    total_ = rs_steps_ + (gather ? n_ - 1 : 0);
    next_ = mod(op.rank() + 1, n_);
    prev_ = mod(op.rank() - 1, n_);
    size_t max_chunk = 0;
    for (int seg = 0; seg < n_; ++seg)
      max_chunk = std::max(max_chunk, plan.chunk_end(seg, 0) - plan.chunk_begin(seg, 0));
    tmp_.resize((max_chunk + 1) * esize);
  }

  void run() {
    if (total_ == 0) return;
    for (int c = 0; c < plan_.chunks; ++c) queue(0, c);
    op_.wait();
  }

 private:
  int send_seg(int step) const {
    return step < rs_steps_ ? mod(owned_ - 1 - step, n_) : mod(owned_ - (step - rs_steps_), n_);
  }
  int recv_seg(int step) const {
    return step < rs_steps_ ? mod(owned_ - 2 - step, n_) : mod(owned_ - 1 - (step - rs_steps_), n_);
  }

  void queue(int step, int c) {
    int s = send_seg(step);
    size_t sb = plan_.chunk_begin(s, c), se = plan_.chunk_end(s, c);
    op_.send(next_, buf_ + sb * esize_, (se - sb) * esize_);
    int r = recv_seg(step);
    size_t rb = plan_.chunk_begin(r, c), re = plan_.chunk_end(r, c);
    if (step < rs_steps_) {
      op_.recv(prev_, tmp_.data(), (re - rb) * esize_, [this, step, c, rb, re] {
        reduce_into(buf_ + rb * esize_, tmp_.data(), re - rb, dtype_, redop_);
        if (step == rs_steps_ - 1 && redop_ == fsAvg)
          finish_average(buf_ + rb * esize_, re - rb, dtype_, n_);
        if (step + 1 < total_) queue(step + 1, c);
      });
    } else {
      op_.recv(prev_, buf_ + rb * esize_, (re - rb) * esize_, [this, step, c] {
        if (step + 1 < total_) queue(step + 1, c);
      });
    }
  }

  HostOp& op_;
  char* buf_;
  const RingPlan& plan_;
  size_t esize_;
  fsDataType_t dtype_;
  fsRedOp_t redop_;
  int n_, owned_, rs_steps_ = 0, total_ = 0, next_ = 0, prev_ = 0;
  std::vector<char> tmp_;
};

void ring_all_reduce(HostOp& op, char* buf, size_t count, size_t esize, fsDataType_t dtype,
                     fsRedOp_t redop) {
  int n = op.nranks();
  std::vector<size_t> offset(n), length(n);
  for (int s = 0; s < n; ++s) {
    offset[s] = count * s / n;
    length[s] = count * (s + 1) / n - offset[s];
  }
  RingPlan plan = make_plan(offset, length, esize, op.chunk_bytes);
  Ring(op, buf, plan, esize, dtype, redop, true, true, mod(op.rank() + 1, n)).run();
}

// Recursive doubling; ranks beyond the largest power of two first fold into a partner.
void rhd_all_reduce(HostOp& op, char* buf, size_t count, size_t esize, fsDataType_t dtype,
                    fsRedOp_t redop) {
  int n = op.nranks(), rank = op.rank();
  int pof2 = 1;
  while (pof2 * 2 <= n) pof2 *= 2;
  int rem = n - pof2;
  size_t bytes = count * esize;
  std::vector<char> tmp(bytes + 1);
  int vrank;
  if (rank < 2 * rem) {
    if (rank % 2 == 0) {
      op.send(rank + 1, buf, bytes);
      op.recv(rank + 1, buf, bytes);
      op.wait();
      return;
    }
    op.recv(rank - 1, tmp.data(), bytes);
    op.wait();
    reduce_into(buf, tmp.data(), count, dtype, redop);
    vrank = rank / 2;
  } else {
    vrank = rank - rem;
  }
  for (int mask = 1; mask < pof2; mask <<= 1) {
    int vpeer = vrank ^ mask;
    int peer = vpeer < rem ? vpeer * 2 + 1 : vpeer + rem;
    op.send(peer, buf, bytes);
    op.recv(peer, tmp.data(), bytes);
    op.wait();
    reduce_into(buf, tmp.data(), count, dtype, redop);
  }
  if (redop == fsAvg) finish_average(buf, count, dtype, n);
  if (rank < 2 * rem) {
    op.send(rank - 1, buf, bytes);
    op.wait();
  }
}

}  // namespace

Algo choose_allreduce(const HostOp& op, size_t bytes) {
  if (op.algo == Algo::kRing || op.algo == Algo::kRhd || op.algo == Algo::kTree) return op.algo;
  // Latency-bandwidth model of loopback/Ethernet TCP: alpha per message, beta per byte moved,
  // gamma per byte reduced. Constants are rough; only the crossover matters.
  const double alpha = 25e-6, beta = 0.4e-9, gamma = 0.15e-9;
  double n = op.nranks(), s = static_cast<double>(bytes);
  double steps = 0;
  for (int p = 1; p < op.nranks(); p <<= 1) steps += 1;
  double ring = 2 * (n - 1) * (alpha + s / n * beta) + (n - 1) / n * s * gamma;
  double rhd = (steps + 2) * alpha + steps * s * (beta + gamma);
  return ring < rhd ? Algo::kRing : Algo::kRhd;
}

void host_all_reduce(HostOp& op, const void* send, void* recv, size_t count, fsDataType_t dtype,
                     fsRedOp_t redop) {
  size_t esize = dtype_bytes(dtype);
  check_call(op, OpKind::kAllReduce, count, dtype, redop, 0);
  if (send != recv) std::memmove(recv, send, count * esize);
  if (op.nranks() == 1 || count == 0) {
    if (redop == fsAvg) finish_average(recv, count, dtype, op.nranks());
    return;
  }
  switch (choose_allreduce(op, count * esize)) {
    case Algo::kRing:
      ring_all_reduce(op, static_cast<char*>(recv), count, esize, dtype, redop);
      return;
    case Algo::kTree: {
      // Binomial reduce to rank 0, then binomial broadcast; the checks already ran above.
      HostOp inner = op;
      inner.check = false;
      inner.algo = Algo::kTree;
      fsRedOp_t reduce_op = redop == fsAvg ? fsSum : redop;
      host_reduce(inner, recv, recv, count, dtype, reduce_op, 0);
      if (op.rank() == 0 && redop == fsAvg) finish_average(recv, count, dtype, op.nranks());
      host_broadcast(inner, recv, recv, count, dtype, 0);
      return;
    }
    default:
      rhd_all_reduce(op, static_cast<char*>(recv), count, esize, dtype, redop);
  }
}

void host_reduce_scatter(HostOp& op, const void* send, void* recv, size_t count, fsDataType_t dtype,
                         fsRedOp_t redop) {
  size_t esize = dtype_bytes(dtype);
  int n = op.nranks();
  check_call(op, OpKind::kReduceScatter, count, dtype, redop, 0);
  std::vector<char> work(static_cast<const char*>(send),
                         static_cast<const char*>(send) + count * n * esize);
  if (n > 1 && count > 0) {
    std::vector<size_t> offset(n), length(n, count);
    for (int s = 0; s < n; ++s) offset[s] = count * s;
    RingPlan plan = make_plan(offset, length, esize, op.chunk_bytes);
    Ring(op, work.data(), plan, esize, dtype, redop, true, false, op.rank()).run();
  } else if (redop == fsAvg) {
    finish_average(work.data(), count, dtype, n);
  }
  std::memcpy(recv, work.data() + count * op.rank() * esize, count * esize);
}

void host_all_gather(HostOp& op, const void* send, void* recv, size_t count, fsDataType_t dtype) {
  size_t esize = dtype_bytes(dtype);
  int n = op.nranks(), rank = op.rank();
  check_call(op, OpKind::kAllGather, count, dtype, fsSum, 0);
  char* out = static_cast<char*>(recv);
  if (send != out + count * rank * esize)
    std::memmove(out + count * rank * esize, send, count * esize);
  if (n == 1 || count == 0) return;
  if (op.algo == Algo::kDirect) {
    for (int peer = 0; peer < n; ++peer) {
      if (peer == rank) continue;
      op.send(peer, out + count * rank * esize, count * esize);
      op.recv(peer, out + count * peer * esize, count * esize);
    }
    op.wait();
    return;
  }
  std::vector<size_t> offset(n), length(n, count);
  for (int s = 0; s < n; ++s) offset[s] = count * s;
  RingPlan plan = make_plan(offset, length, esize, op.chunk_bytes);
  Ring(op, out, plan, esize, dtype, fsSum, false, true, rank).run();
}

}  // namespace flagstone::comm
