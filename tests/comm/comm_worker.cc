// One rank of a multi-process comm test, started by comm_test through fork/exec with the launch
// environment. argv[1] names the scenario; exit code 0 means every check passed, and failures
// print what differed.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "flagstone/comm.h"
#include "flagstone/runtime/device.h"
#include "reference.h"

using namespace flagstone::comm::testing;
namespace runtime = flagstone::runtime;

namespace {

int g_rank = 0, g_size = 0, g_failures = 0;
fsComm_t g_comm = nullptr;
bool g_device = false;  // put buffers in device memory of the comm's device
runtime::Device g_dev;

#define CHECK_OK(call)                                                                           \
  do {                                                                                           \
    fsResult_t rc_ = (call);                                                                     \
    if (rc_ != fsSuccess) {                                                                      \
      std::fprintf(stderr, "rank %d: %s failed: %s: %s\n", g_rank, #call, fsGetErrorString(rc_), \
                   fsGetLastError());                                                            \
      std::exit(3);                                                                              \
    }                                                                                            \
  } while (0)

// A buffer in host memory or in device memory (at a non-zero offset, to exercise offsets).
struct TestBuf {
  std::vector<char> host;
  runtime::Buffer dev;
  static constexpr size_t kOffset = 24;
  explicit TestBuf(size_t bytes) : host(bytes + 1, 0) {
    if (g_device) {
      dev = runtime::Buffer::allocate(g_dev, bytes + kOffset + 1);
      upload();
    }
  }
  TestBuf(const std::vector<char>& data) : TestBuf(data.size() - 1) {
    host = data;
    if (g_device) upload();
  }
  void upload() {
    runtime::copy_host_to_device(runtime::Stream::default_stream(g_dev), dev, kOffset, host.data(),
                                 host.size() - 1);
  }
  fsBuf buf() { return g_device ? fsDeviceBuf(dev.handle(), kOffset) : fsHostBuf(host.data()); }
  const char* result() {
    if (g_device) {
      auto stream = runtime::Stream::default_stream(g_dev);
      runtime::copy_device_to_host(stream, host.data(), dev, kOffset, host.size() - 1);
      stream.synchronize();
    }
    return host.data();
  }
};

void expect_equal(const char* what, fsDataType_t dtype, fsRedOp_t op, size_t count, const char* got,
                  const char* want) {
  size_t es = esize(dtype);
  for (size_t i = 0; i < count; ++i) {
    if (std::memcmp(got + i * es, want + i * es, es) != 0) {
      double g = 0, w = 0;
      if (dtype != fsUint32 && dtype != fsUint64) {
        g = flagstone::load_as_double(got, runtime_dtype(dtype), i);
        w = flagstone::load_as_double(want, runtime_dtype(dtype), i);
      }
      std::fprintf(stderr,
                   "rank %d of %d: %s dtype=%d op=%d count=%zu: element %zu is %g, want %g\n",
                   g_rank, g_size, what, dtype, op, count, i, g, w);
      if (++g_failures > 20) std::exit(1);
      return;
    }
  }
}

void test_reductions(size_t count) {
  for (int d = 0; d < fsNumTypes; ++d) {
    auto dtype = static_cast<fsDataType_t>(d);
    size_t es = esize(dtype);
    for (int o = 0; o < fsNumOps; ++o) {
      auto op = static_cast<fsRedOp_t>(o);
      std::vector<char> input = make_input(dtype, op, g_rank, count);
      // all-reduce, out of place and in place
      TestBuf send(input), recv(count * es);
      CHECK_OK(fsAllReduce(send.buf(), recv.buf(), count, dtype, op, g_comm, nullptr));
      auto want = expected_reduction(dtype, op, g_size, 0, count);
      expect_equal("allreduce", dtype, op, count, recv.result(), want.data());
      TestBuf inplace(input);
      CHECK_OK(fsAllReduce(inplace.buf(), inplace.buf(), count, dtype, op, g_comm, nullptr));
      expect_equal("allreduce-inplace", dtype, op, count, inplace.result(), want.data());
      // reduce to a root that moves with the dtype
      int root = (d + o) % g_size;
      TestBuf rsend(input), rrecv(count * es);
      CHECK_OK(fsReduce(rsend.buf(), rrecv.buf(), count, dtype, op, root, g_comm, nullptr));
      if (g_rank == root) expect_equal("reduce", dtype, op, count, rrecv.result(), want.data());
      // reduce-scatter: rank r's input is n blocks, block b element i is input (r, b*count+i)
      std::vector<char> big = make_input(dtype, op, g_rank, count * g_size);
      TestBuf ssend(big), srecv(count * es);
      CHECK_OK(fsReduceScatter(ssend.buf(), srecv.buf(), count, dtype, op, g_comm, nullptr));
      auto swant = expected_reduction(dtype, op, g_size, count * g_rank, count);
      expect_equal("reducescatter", dtype, op, count, srecv.result(), swant.data());
    }
  }
}

void test_movement(size_t count) {
  for (int d = 0; d < fsNumTypes; ++d) {
    auto dtype = static_cast<fsDataType_t>(d);
    size_t es = esize(dtype);
    int n = g_size;
    std::vector<char> mine = make_input(dtype, fsSum, g_rank, count);
    // broadcast from every root
    for (int root = 0; root < n; ++root) {
      TestBuf send(mine), recv(count * es);
      CHECK_OK(fsBroadcast(send.buf(), recv.buf(), count, dtype, root, g_comm, nullptr));
      auto want = make_input(dtype, fsSum, root, count);
      expect_equal("broadcast", dtype, fsSum, count, recv.result(), want.data());
    }
    // all-gather: block r is rank r's input
    std::vector<char> gathered(count * es * n + 1);
    for (int r = 0; r < n; ++r) {
      auto block = make_input(dtype, fsSum, r, count);
      std::memcpy(gathered.data() + r * count * es, block.data(), count * es);
    }
    {
      TestBuf send(mine), recv(count * es * n);
      CHECK_OK(fsAllGather(send.buf(), recv.buf(), count, dtype, g_comm, nullptr));
      expect_equal("allgather", dtype, fsSum, count * n, recv.result(), gathered.data());
    }
    int root = d % n;
    {
      TestBuf send(mine), recv(count * es * n);
      CHECK_OK(fsGather(send.buf(), recv.buf(), count, dtype, root, g_comm, nullptr));
      if (g_rank == root)
        expect_equal("gather", dtype, fsSum, count * n, recv.result(), gathered.data());
    }
    {
      // scatter: root's input of n*count, block r to rank r
      TestBuf send(make_input(dtype, fsSum, root, count * n)), recv(count * es);
      CHECK_OK(fsScatter(send.buf(), recv.buf(), count, dtype, root, g_comm, nullptr));
      auto all = make_input(dtype, fsSum, root, count * n);
      expect_equal("scatter", dtype, fsSum, count, recv.result(), all.data() + g_rank * count * es);
    }
    {
      // all-to-all: rank r sends block p (elements p*count..) of its input to rank p
      TestBuf send(make_input(dtype, fsSum, g_rank, count * n)), recv(count * es * n);
      CHECK_OK(fsAllToAll(send.buf(), recv.buf(), count, dtype, g_comm, nullptr));
      std::vector<char> want(count * es * n + 1);
      for (int p = 0; p < n; ++p) {
        auto theirs = make_input(dtype, fsSum, p, count * n);
        std::memcpy(want.data() + p * count * es, theirs.data() + g_rank * count * es, count * es);
      }
      expect_equal("alltoall", dtype, fsSum, count * n, recv.result(), want.data());
    }
    {
      // all-to-all-v: rank r sends (r + 2p) % 3 * count + 1 elements to rank p
      auto amount = [&](int from, int to) { return (from + 2 * to) % 3 * count + 1; };
      std::vector<size_t> sc(n), sd(n), rc(n), rd(n);
      size_t stotal = 0, rtotal = 0;
      for (int p = 0; p < n; ++p) {
        sc[p] = amount(g_rank, p);
        sd[p] = stotal;
        stotal += sc[p] + 1;  // gaps between blocks must stay untouched
        rc[p] = amount(p, g_rank);
        rd[p] = rtotal;
        rtotal += rc[p] + 1;
      }
      TestBuf send(make_input(dtype, fsSum, g_rank, stotal)), recv(rtotal * es);
      CHECK_OK(fsAllToAllv(send.buf(), sc.data(), sd.data(), recv.buf(), rc.data(), rd.data(),
                           dtype, g_comm, nullptr));
      std::vector<char> want(rtotal * es + 1, 0);
      for (int p = 0; p < n; ++p) {
        size_t their_displ = 0;
        for (int q = 0; q < g_rank; ++q) their_displ += amount(p, q) + 1;
        auto theirs = make_input(dtype, fsSum, p, their_displ + rc[p]);
        std::memcpy(want.data() + rd[p] * es, theirs.data() + their_displ * es, rc[p] * es);
      }
      expect_equal("alltoallv", dtype, fsSum, rtotal, recv.result(), want.data());
    }
    {
      // send/recv around the ring in both directions, grouped so nobody blocks
      int next = (g_rank + 1) % n, prev = (g_rank + n - 1) % n;
      TestBuf from_prev(count * es), from_next(count * es), out(mine);
      CHECK_OK(fsGroupStart());
      CHECK_OK(fsSend(out.buf(), count, dtype, next, g_comm, nullptr));
      CHECK_OK(fsRecv(from_prev.buf(), count, dtype, prev, g_comm, nullptr));
      if (n > 2) CHECK_OK(fsSend(out.buf(), count, dtype, prev, g_comm, nullptr));
      if (n > 2) CHECK_OK(fsRecv(from_next.buf(), count, dtype, next, g_comm, nullptr));
      CHECK_OK(fsGroupEnd());
      auto want_prev = make_input(dtype, fsSum, prev, count);
      expect_equal("sendrecv", dtype, fsSum, count, from_prev.result(), want_prev.data());
      if (n > 2) {
        auto want_next = make_input(dtype, fsSum, next, count);
        expect_equal("sendrecv-back", dtype, fsSum, count, from_next.result(), want_next.data());
      }
    }
  }
  CHECK_OK(fsBarrier(g_comm, nullptr));
}

void test_split() {
  // Even and odd ranks form two communicators ordered by descending old rank.
  fsComm_t sub = nullptr;
  CHECK_OK(fsCommSplit(g_comm, g_rank % 2, -g_rank, &sub, nullptr));
  int sub_rank = -1, sub_size = -1;
  CHECK_OK(fsCommUserRank(sub, &sub_rank));
  CHECK_OK(fsCommCount(sub, &sub_size));
  int want_size = (g_size + 1 - g_rank % 2) / 2;
  int want_rank = (g_size - 1 - g_rank) / 2;
  if (sub_size != want_size || sub_rank != want_rank) {
    std::fprintf(stderr, "rank %d: split gave rank %d of %d, want %d of %d\n", g_rank, sub_rank,
                 sub_size, want_rank, want_size);
    ++g_failures;
  }
  int64_t value = g_rank, total = 0, want = 0;
  for (int r = g_rank % 2; r < g_size; r += 2) want += r;
  CHECK_OK(fsAllReduce(fsHostBuf(&value), fsHostBuf(&total), 1, fsInt64, fsSum, sub, nullptr));
  if (total != want) {
    std::fprintf(stderr, "rank %d: split allreduce %ld, want %ld\n", g_rank, long(total),
                 long(want));
    ++g_failures;
  }
  CHECK_OK(fsCommDestroy(sub));
}

// A group holding collectives on two communicators, a broadcast and send/recv pairs: nothing
// runs until fsGroupEnd, then everything completes. Host-only runs also list the two
// communicators in opposite orders on even and odd ranks, which only works because a group
// issues them concurrently (NCCL streams would order them, so device runs keep one order).
void test_groups(bool host_only) {
  fsComm_t sub = nullptr;
  // A duplicate of the world: with opposite orders, issuing one communicator after the other
  // would deadlock (even ranks wait in one, odd ranks in the other).
  CHECK_OK(fsCommSplit(g_comm, 0, g_rank, &sub, nullptr));
  const size_t count = 5000;
  auto dtype = fsFloat32;
  size_t es = esize(dtype);
  std::vector<char> input = make_input(dtype, fsSum, g_rank, count);
  TestBuf all_in(input), all_out(count * es), bcast(count * es), from_prev(count * es);
  // The duplicate's all-reduce of the ranks.
  int64_t mine = g_rank, sub_sum = -1;
  int next = (g_rank + 1) % g_size, prev = (g_rank + g_size - 1) % g_size;
  bool reversed = host_only && g_rank % 2 == 1;
  CHECK_OK(fsGroupStart());
  if (reversed)
    CHECK_OK(fsAllReduce(fsHostBuf(&mine), fsHostBuf(&sub_sum), 1, fsInt64, fsSum, sub, nullptr));
  CHECK_OK(fsAllReduce(all_in.buf(), all_out.buf(), count, dtype, fsSum, g_comm, nullptr));
  CHECK_OK(fsSend(all_in.buf(), count, dtype, next, g_comm, nullptr));
  CHECK_OK(fsBroadcast(all_in.buf(), bcast.buf(), count, dtype, g_size - 1, g_comm, nullptr));
  CHECK_OK(fsRecv(from_prev.buf(), count, dtype, prev, g_comm, nullptr));
  if (!reversed)
    CHECK_OK(fsAllReduce(fsHostBuf(&mine), fsHostBuf(&sub_sum), 1, fsInt64, fsSum, sub, nullptr));
  // Deferred: the host output is untouched before fsGroupEnd.
  if (sub_sum != -1) {
    std::fprintf(stderr, "rank %d: grouped all-reduce ran before fsGroupEnd\n", g_rank);
    ++g_failures;
  }
  CHECK_OK(fsGroupEnd());
  auto want = expected_reduction(dtype, fsSum, g_size, 0, count);
  expect_equal("group-allreduce", dtype, fsSum, count, all_out.result(), want.data());
  auto want_bcast = make_input(dtype, fsSum, g_size - 1, count);
  expect_equal("group-broadcast", dtype, fsSum, count, bcast.result(), want_bcast.data());
  auto want_prev = make_input(dtype, fsSum, prev, count);
  expect_equal("group-sendrecv", dtype, fsSum, count, from_prev.result(), want_prev.data());
  int64_t want_sum = 0;
  for (int r = 0; r < g_size; ++r) want_sum += r;
  if (sub_sum != want_sum) {
    std::fprintf(stderr, "rank %d: grouped sub-communicator all-reduce %ld, want %ld\n", g_rank,
                 long(sub_sum), long(want_sum));
    ++g_failures;
  }
  CHECK_OK(fsCommDestroy(sub));
  if (!g_device) return;
  // Device buffers only: on a comm that runs on NCCL the whole group is one NCCL group.
  TestBuf dev_in(input), dev_sum(count * es), dev_bcast(count * es);
  CHECK_OK(fsGroupStart());
  CHECK_OK(fsAllReduce(dev_in.buf(), dev_sum.buf(), count, dtype, fsSum, g_comm, nullptr));
  CHECK_OK(fsBroadcast(dev_in.buf(), dev_bcast.buf(), count, dtype, 0, g_comm, nullptr));
  CHECK_OK(fsGroupEnd());
  expect_equal("device-group-allreduce", dtype, fsSum, count, dev_sum.result(), want.data());
  auto want_root0 = make_input(dtype, fsSum, 0, count);
  expect_equal("device-group-broadcast", dtype, fsSum, count, dev_bcast.result(),
               want_root0.data());
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Every survivor must see an error (not a hang) within the timeout plus slack.
int expect_failure_within(fsResult_t rc, std::chrono::steady_clock::time_point start,
                          double limit_s, const char* what) {
  double took = seconds_since(start);
  std::printf("rank %d: %s returned %s after %.2f s: %s\n", g_rank, what, fsGetErrorString(rc),
              took, fsGetLastError());
  if (rc == fsSuccess) return 4;
  if (took > limit_s) return 5;
  fsResult_t async = fsSuccess;
  fsCommGetAsyncError(g_comm, &async);
  if (async == fsSuccess) return 6;
  return 0;
}

// One all-reduce, then (device buffers) a wait for the stream: NCCL calls return once queued,
// so a hang shows there, until the watchdog aborts the NCCL communicator.
fsResult_t all_reduce_and_wait(TestBuf& send, TestBuf& recv, size_t count) {
  fsResult_t rc = fsAllReduce(send.buf(), recv.buf(), count, fsFloat32, fsSum, g_comm, nullptr);
  if (rc == fsSuccess && g_device) {
    try {
      runtime::Stream::default_stream(g_dev).synchronize();
    } catch (const std::exception& error) {
      std::printf("rank %d: stream: %s\n", g_rank, error.what());
    }
  }
  return rc;
}

int scenario_fault(const std::string& kind, double timeout_s) {
  const size_t count = 4 << 20;  // 16 MiB of f32: long enough to be mid-transfer when it dies
  std::vector<char> ones(count * sizeof(float) + 1, 0);
  for (size_t i = 0; i < count; ++i) reinterpret_cast<float*>(ones.data())[i] = 1.0f;
  TestBuf send(ones), recv(count * sizeof(float));
  int victim = g_size - 1;
  CHECK_OK(all_reduce_and_wait(send, recv, 16));  // everyone is up
  if (g_rank == victim && kind == "kill") {
    std::thread([] {
      std::this_thread::sleep_for(std::chrono::milliseconds(30));
      ::kill(::getpid(), SIGKILL);
    }).detach();
    for (;;) all_reduce_and_wait(send, recv, count);
  }
  if (g_rank == victim && (kind == "hang" || kind == "abort")) {
    std::this_thread::sleep_for(std::chrono::duration<double>(timeout_s + 2));
    return 0;
  }
  if (kind == "abort" && g_rank == 0) {
    std::thread([] {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      fsCommAbort(g_comm);
    }).detach();
  }
  auto start = std::chrono::steady_clock::now();
  fsResult_t rc = fsSuccess;
  for (int i = 0; i < 1000 && rc == fsSuccess; ++i) rc = all_reduce_and_wait(send, recv, count);
  int status = expect_failure_within(rc, start, timeout_s + 3, kind.c_str());
  fsResult_t async = fsSuccess;
  fsCommGetAsyncError(g_comm, &async);
  // On NCCL the abort lands between calls: the next call refuses, the async error says why.
  if (kind == "abort" && g_rank == 0 && rc != fsAborted && async != fsAborted) return 7;
  if (kind == "hang" && rc != fsTimeout && rc != fsRemoteError && async != fsTimeout) return 8;
  return status;
}

int scenario_mismatch(const std::string& what) {
  std::vector<double> send(64, 1.0), recv(64);
  size_t count = 32;
  fsDataType_t dtype = fsFloat64;
  int odd = g_size - 1;
  if (g_rank == odd && what == "count") count = 16;
  if (g_rank == odd && what == "dtype") dtype = fsInt64;
  fsResult_t rc = fsAllReduce(fsHostBuf(send.data()), fsHostBuf(recv.data()), count, dtype, fsSum,
                              g_comm, nullptr);
  std::printf("rank %d: %s -> %s\n", g_rank, fsGetErrorString(rc), fsGetLastError());
  if (rc == fsSuccess) return 4;
  // The ranks next to the odd one see the disagreement itself; the others see its fallout.
  bool neighbour = (g_rank + 1) % g_size == odd || (odd + 1) % g_size == g_rank || g_rank == odd;
  if (neighbour && rc == fsInvalidArgument &&
      std::strstr(fsGetLastError(), what == "count" ? "count" : "datatype") == nullptr)
    return 5;
  if (neighbour && rc != fsInvalidArgument && rc != fsRemoteError) return 6;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string scenario = argc > 1 ? argv[1] : "collectives";
  const char* device_env = std::getenv("WORKER_DEVICE_BUFFERS");
  g_device = device_env && std::strcmp(device_env, "1") == 0;
  fsComm_t comm = nullptr;
  CHECK_OK(fsCommInitFromEnv(&comm, nullptr));
  g_comm = comm;
  CHECK_OK(fsCommUserRank(comm, &g_rank));
  CHECK_OK(fsCommCount(comm, &g_size));
  char spec[64];
  CHECK_OK(fsCommDevice(comm, spec, sizeof(spec)));
  g_dev = runtime::Device::get(spec);
  const char* timeout_env = std::getenv("FLAGSTONE_COMM_TIMEOUT_MS");
  double timeout_s = (timeout_env ? std::atof(timeout_env) : 60000.0) / 1000.0;
  int status = 0;
  if (scenario == "collectives") {
    for (size_t count : {size_t{1}, size_t{7}, size_t{1000}, size_t{33000}}) {
      test_reductions(count);
      test_movement(count);
    }
    test_split();
    int32_t cpu = g_dev.is_cpu() ? 1 : 0, all_cpu = 0;
    CHECK_OK(fsAllReduce(fsHostBuf(&cpu), fsHostBuf(&all_cpu), 1, fsInt32, fsMin, g_comm, nullptr));
    test_groups(all_cpu == 1);
    status = g_failures ? 1 : 0;
  } else if (scenario == "kill" || scenario == "hang" || scenario == "abort") {
    status = scenario_fault(scenario, timeout_s);
  } else if (scenario == "mismatch-count" || scenario == "mismatch-dtype") {
    status = scenario_mismatch(scenario.substr(9));
  } else if (scenario == "hello" || scenario == "die") {
    // For launch tests: report what the launcher passed, then one all-reduce of the ranks.
    if (scenario == "die" && g_rank == 1) std::_Exit(3);
    // The others fail only once they reach the all-reduce: well after rank 1 is gone, so which
    // rank failed first is not a race the launcher can lose on a busy machine.
    if (scenario == "die") std::this_thread::sleep_for(std::chrono::milliseconds(300));
    int64_t mine = g_rank, sum = -1;
    CHECK_OK(fsAllReduce(fsHostBuf(&mine), fsHostBuf(&sum), 1, fsInt64, fsSum, g_comm, nullptr));
    std::printf("hello rank %d of %d on %s sum %ld\n", g_rank, g_size, spec, long(sum));
    std::fprintf(stderr, "stderr of rank %d\n", g_rank);
  } else {
    std::fprintf(stderr, "unknown scenario %s\n", scenario.c_str());
    status = 2;
  }
  fsCommDestroy(comm);
  if (status == 0 && scenario == "collectives") std::printf("rank %d on %s: ok\n", g_rank, spec);
  return status;
}
