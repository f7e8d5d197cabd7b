// Multi-process tests of the comm library on loopback: every collective x dtype x reduction on
// 2, 3 and 4 ranks against host references (in comm_worker), mixed cpu/OpenCL ranks, and faults:
// a killed rank, a hung rank, abort from another thread, mismatched calls.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "flagstone/comm.h"
#include "flagstone/runtime/device.h"
#include "process_runner.h"

using namespace flagstone::comm::testing;

namespace {

std::string describe(const std::vector<RankResult>& results) {
  std::string text;
  for (size_t r = 0; r < results.size(); ++r)
    text += "--- rank " + std::to_string(r) + " exit " + std::to_string(results[r].exit_code) +
            " signal " + std::to_string(results[r].signal) +
            (results[r].timed_out ? " TIMED OUT" : "") + "\n" + results[r].output;
  return text;
}

void expect_all_pass(const std::vector<RankResult>& results, int n) {
  ASSERT_EQ(static_cast<int>(results.size()), n);
  for (const RankResult& r : results) EXPECT_EQ(r.exit_code, 0) << describe(results);
}

struct CollectiveCase {
  int ranks;
  std::string algo;
  std::string chunk_bytes;
  bool tcp = false;  // FLAGSTONE_COMM_SHM=0: same-host pairs use TCP instead of shared memory
  // FLAGSTONE_COMM_ARENA_BYTES=0: every all-reduce takes the shared-memory arena, with slots of
  // `stage_bytes` (empty: the default), instead of only those of 1 MiB and more.
  bool arena = false;
  std::string stage_bytes;
};

class Collectives : public ::testing::TestWithParam<CollectiveCase> {};

TEST_P(Collectives, MatchHostReference) {
  const CollectiveCase& c = GetParam();
  std::map<std::string, std::string> env = {{"FLAGSTONE_COMM_ALGO", c.algo},
                                            {"FLAGSTONE_COMM_TIMEOUT_MS", "30000"}};
  if (!c.chunk_bytes.empty()) env["FLAGSTONE_COMM_CHUNK_BYTES"] = c.chunk_bytes;
  if (c.tcp) env["FLAGSTONE_COMM_SHM"] = "0";
  if (c.arena) env["FLAGSTONE_COMM_ARENA_BYTES"] = "0";
  if (!c.stage_bytes.empty()) env["FLAGSTONE_COMM_ARENA_SLOT_BYTES"] = c.stage_bytes;
  auto results = run_ranks(COMM_WORKER, "collectives", c.ranks, {}, env, 100);
  expect_all_pass(results, c.ranks);
}

INSTANTIATE_TEST_SUITE_P(
    Loopback, Collectives,
    ::testing::Values(CollectiveCase{2, "auto", ""}, CollectiveCase{3, "auto", ""},
                      CollectiveCase{4, "auto", ""}, CollectiveCase{3, "ring", "512", true},
                      CollectiveCase{4, "ring", "4096"}, CollectiveCase{3, "rhd", ""},
                      CollectiveCase{4, "rhd", ""}, CollectiveCase{3, "tree", ""},
                      CollectiveCase{4, "direct", "", true},
                      CollectiveCase{2, "auto", "", false, true},
                      CollectiveCase{3, "auto", "", false, true, "4096"},
                      CollectiveCase{4, "auto", "", false, true, "8192"}),
    [](const ::testing::TestParamInfo<CollectiveCase>& info) {
      return std::to_string(info.param.ranks) + "ranks_" + info.param.algo +
             (info.param.chunk_bytes.empty() ? "" : "_chunk" + info.param.chunk_bytes) +
             (info.param.tcp ? "_tcp" : "_shm") + (info.param.arena ? "_arena" : "") +
             (info.param.stage_bytes.empty() ? "" : "_slot" + info.param.stage_bytes);
    });

TEST(CommDevices, CpuDeviceBuffers) {
  auto results =
      run_ranks(COMM_WORKER, "collectives", 2, {"cpu"}, {{"WORKER_DEVICE_BUFFERS", "1"}}, 100);
  expect_all_pass(results, 2);
}

TEST(CommDevices, MixedCpuAndOpenCLRanks) {
  if (flagstone::runtime::devices_of("opencl").empty()) GTEST_SKIP() << "no OpenCL device";
  // Small staging chunks so the chunked, event-ordered staging path runs many chunks; then the
  // same with every all-reduce through the shm arena (staged members feed it chunk by chunk).
  for (const char* arena : {"1048576", "0"}) {
    SCOPED_TRACE(std::string("FLAGSTONE_COMM_ARENA_BYTES=") + arena);
    auto results = run_ranks(COMM_WORKER, "collectives", 3, {"opencl:0", "cpu", "opencl:0"},
                             {{"WORKER_DEVICE_BUFFERS", "1"},
                              {"FLAGSTONE_COMM_STAGE_BYTES", "8192"},
                              {"FLAGSTONE_COMM_ARENA_SLOT_BYTES", "8192"},
                              {"FLAGSTONE_COMM_ARENA_BYTES", arena}},
                             110);
    expect_all_pass(results, 3);
  }
}

// Device mixes chosen by whoever runs the suite: FLAGSTONE_COMM_TEST_DEVICES holds lists
// separated by ';', each a comma-separated device per rank, e.g. on the one-GPU machine
// "cuda:0,cpu;cpu,cuda:0,opencl:0;cuda:0,cpu,opencl:0,cpu" (NCCL takes one rank per GPU; two
// CUDA ranks on one GPU run through host staging). Each list is one run of every collective.
std::vector<std::vector<std::string>> configured_device_lists() {
  std::vector<std::vector<std::string>> lists;
  const char* text = std::getenv("FLAGSTONE_COMM_TEST_DEVICES");
  std::string all = text ? text : "";
  size_t start = 0;
  while (start < all.size()) {
    size_t end = all.find(';', start);
    if (end == std::string::npos) end = all.size();
    std::vector<std::string> devices;
    std::string list = all.substr(start, end - start);
    for (size_t p = 0; p < list.size();) {
      size_t comma = list.find(',', p);
      if (comma == std::string::npos) comma = list.size();
      if (comma > p) devices.push_back(list.substr(p, comma - p));
      p = comma + 1;
    }
    if (!devices.empty()) lists.push_back(devices);
    start = end + 1;
  }
  return lists;
}

TEST(CommDevices, ConfiguredDeviceMixes) {
  auto lists = configured_device_lists();
  if (lists.empty()) GTEST_SKIP() << "FLAGSTONE_COMM_TEST_DEVICES is not set";
  for (const auto& devices : lists) {
    std::string name;
    for (const std::string& d : devices) name += (name.empty() ? "" : ",") + d;
    for (const char* stage : {"8192", "4194304"}) {
      SCOPED_TRACE("devices " + name + " stage bytes " + stage);
      int n = static_cast<int>(devices.size());
      auto results = run_ranks(COMM_WORKER, "collectives", n, devices,
                               {{"WORKER_DEVICE_BUFFERS", "1"},
                                {"FLAGSTONE_COMM_STAGE_BYTES", stage},
                                {"FLAGSTONE_COMM_TIMEOUT_MS", "20000"}},
                               150);
      expect_all_pass(results, n);
      if (!HasFailure())
        std::printf("[ devices %s, stage %s B: %d ranks pass ]\n", name.c_str(), stage, n);
    }
  }
}

TEST(CommFaults, KilledRankMakesOthersFailWithinTimeout) {
  auto results = run_ranks(COMM_WORKER, "kill", 3, {}, {{"FLAGSTONE_COMM_TIMEOUT_MS", "3000"}}, 30);
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[2].signal, SIGKILL) << describe(results);
  EXPECT_EQ(results[0].exit_code, 0) << describe(results);
  EXPECT_EQ(results[1].exit_code, 0) << describe(results);
}

// The same with the ring (the default path below 1 MiB) instead of the arena.
TEST(CommFaults, KilledRankOnTheRingPath) {
  auto results =
      run_ranks(COMM_WORKER, "kill", 3, {},
                {{"FLAGSTONE_COMM_TIMEOUT_MS", "3000"}, {"FLAGSTONE_COMM_ARENA", "0"}}, 30);
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[2].signal, SIGKILL) << describe(results);
  EXPECT_EQ(results[0].exit_code, 0) << describe(results);
  EXPECT_EQ(results[1].exit_code, 0) << describe(results);
}

TEST(CommFaults, HungRankTimesOut) {
  auto results = run_ranks(COMM_WORKER, "hang", 3, {}, {{"FLAGSTONE_COMM_TIMEOUT_MS", "1500"}}, 30);
  expect_all_pass(results, 3);
  EXPECT_NE(results[0].output.find("timeout"), std::string::npos) << describe(results);
}

TEST(CommFaults, AbortFromAnotherThread) {
  auto results =
      run_ranks(COMM_WORKER, "abort", 3, {}, {{"FLAGSTONE_COMM_TIMEOUT_MS", "4000"}}, 30);
  expect_all_pass(results, 3);
}

// Faults with a CUDA rank, device buffers. One GPU: cuda:0 + cpu ranks (hierarchical all-reduce
// through the arena), the cpu rank dies, hangs or rank 0 aborts. Two or more GPUs: also all-CUDA
// groups on NCCL, where a dead or hung peer leaves NCCL's kernels waiting and only the watchdog's
// per-operation timeout (ncclCommAbort) brings the survivors back.
std::vector<std::vector<std::string>> gpu_fault_groups() {
  int gpus = static_cast<int>(flagstone::runtime::devices_of("cuda").size());
  std::vector<std::vector<std::string>> groups;
  if (gpus >= 1) groups.push_back({"cuda:0", "cpu", "cpu"});
  if (gpus >= 2) groups.push_back({"cuda:0", "cuda:1"});
  return groups;
}

void run_gpu_fault(const std::string& kind, const char* timeout_ms) {
  auto groups = gpu_fault_groups();
  if (groups.empty()) GTEST_SKIP() << "no CUDA device";
  for (const auto& devices : groups) {
    SCOPED_TRACE("devices " + devices.front() + ".." + devices.back());
    int n = static_cast<int>(devices.size());
    auto results =
        run_ranks(COMM_WORKER, kind, n, devices,
                  {{"WORKER_DEVICE_BUFFERS", "1"}, {"FLAGSTONE_COMM_TIMEOUT_MS", timeout_ms}}, 40);
    ASSERT_EQ(static_cast<int>(results.size()), n);
    for (int r = 0; r + 1 < n; ++r) EXPECT_EQ(results[r].exit_code, 0) << describe(results);
    if (kind == "kill") {
      EXPECT_EQ(results[n - 1].signal, SIGKILL) << describe(results);
    }
    if (!::testing::Test::HasFailure()) std::printf("%s", results[0].output.c_str());
  }
}

TEST(CommGpuFaults, KilledPeer) {
  run_gpu_fault("kill", "4000");
}

TEST(CommGpuFaults, HungPeerTimesOut) {
  run_gpu_fault("hang", "2000");
}

TEST(CommGpuFaults, AbortFromAnotherThread) {
  run_gpu_fault("abort", "5000");
}

TEST(CommFaults, MismatchedCountIsReported) {
  auto results =
      run_ranks(COMM_WORKER, "mismatch-count", 4, {}, {{"FLAGSTONE_COMM_TIMEOUT_MS", "5000"}}, 30);
  expect_all_pass(results, 4);
}

TEST(CommFaults, MismatchedDtypeIsReported) {
  auto results =
      run_ranks(COMM_WORKER, "mismatch-dtype", 3, {}, {{"FLAGSTONE_COMM_TIMEOUT_MS", "5000"}}, 30);
  expect_all_pass(results, 3);
}

#ifdef COMM_TEST_MPIRUN
// The Open MPI engine under a real mpirun: the same collective checks, run by MPI's collectives
// (f16/bf16 through MPI user ops), with the unique id shared by MPI_Bcast.
TEST(CommMpi, EngineMatchesHostReference) {
  // Under LeakSanitizer, the ranks unwind malloc stacks fully: Open MPI's libraries have no frame
  // pointers, so the fast unwinder stops at their first frame and tests/lsan.supp could not name
  // the library that leaked.
  std::string lsan;
  if (const char* options = std::getenv("LSAN_OPTIONS"))
    lsan = std::string("LSAN_OPTIONS='") + options + ":fast_unwind_on_malloc=0' ";
  std::string command = lsan + COMM_TEST_MPIRUN + " -n 3 --oversubscribe --bind-to none " +
                        (::geteuid() == 0 ? "--allow-run-as-root " : "") +
                        "-x FLAGSTONE_COMM_ENGINE=mpi -x FLAGSTONE_NUM_THREADS=1 " + COMM_WORKER +
                        " collectives 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char chunk[4096];
  while (size_t got = std::fread(chunk, 1, sizeof(chunk), pipe)) output.append(chunk, got);
  int status = ::pclose(pipe);
  EXPECT_EQ(status, 0) << output;
  for (int rank = 0; rank < 3; ++rank)
    EXPECT_NE(output.find("rank " + std::to_string(rank) + " on cpu:0: ok"), std::string::npos)
        << output;
}
#endif

// In-process checks on a one-rank communicator.
class SingleRank : public ::testing::Test {
 protected:
  void SetUp() override {
    fsUniqueId id;
    ASSERT_EQ(fsGetUniqueId(&id), fsSuccess) << fsGetLastError();
    ASSERT_EQ(fsCommInitRank(&comm_, 1, id, 0), fsSuccess) << fsGetLastError();
  }
  void TearDown() override {
    if (comm_) {
      EXPECT_EQ(fsCommDestroy(comm_), fsSuccess);
    }
  }
  fsComm_t comm_ = nullptr;
};

TEST_F(SingleRank, InvalidArgumentsNameTheCulprit) {
  float data[4] = {1, 2, 3, 4};
  EXPECT_EQ(fsAllReduce(fsHostBuf(nullptr), fsHostBuf(data), 4, fsFloat32, fsSum, comm_, nullptr),
            fsInvalidArgument);
  EXPECT_NE(std::strstr(fsGetLastError(), "sendbuf"), nullptr) << fsGetLastError();
  EXPECT_NE(std::strstr(fsGetLastError(), "rank 0"), nullptr) << fsGetLastError();
  EXPECT_EQ(fsAllReduce(fsHostBuf(data), fsHostBuf(data), 4, static_cast<fsDataType_t>(42), fsSum,
                        comm_, nullptr),
            fsInvalidArgument);
  EXPECT_NE(std::strstr(fsGetLastError(), "datatype 42"), nullptr) << fsGetLastError();
  EXPECT_EQ(fsAllReduce(fsHostBuf(data), fsHostBuf(data), 4, fsFloat32, static_cast<fsRedOp_t>(9),
                        comm_, nullptr),
            fsInvalidArgument);
  EXPECT_NE(std::strstr(fsGetLastError(), "reduction 9"), nullptr) << fsGetLastError();
  EXPECT_EQ(fsBroadcast(fsHostBuf(data), fsHostBuf(data), 4, fsFloat32, 3, comm_, nullptr),
            fsInvalidArgument);
  EXPECT_NE(std::strstr(fsGetLastError(), "root 3"), nullptr) << fsGetLastError();
  EXPECT_EQ(fsSend(fsHostBuf(data), 4, fsFloat32, 0, comm_, nullptr), fsInvalidArgument);
  EXPECT_NE(std::strstr(fsGetLastError(), "peer 0"), nullptr) << fsGetLastError();
  EXPECT_EQ(fsAllReduce(fsHostBuf(data), fsHostBuf(data), 4, fsFloat32, fsSum, nullptr, nullptr),
            fsInvalidArgument);
  EXPECT_EQ(fsGroupEnd(), fsInvalidUsage);
  // Bad arguments do not break the communicator.
  EXPECT_EQ(fsAllReduce(fsHostBuf(data), fsHostBuf(data), 4, fsFloat32, fsSum, comm_, nullptr),
            fsSuccess)
      << fsGetLastError();
  EXPECT_EQ(data[2], 3.0f);
}

TEST_F(SingleRank, AverageOfOneRankIsIdentity) {
  int32_t data[3] = {5, -7, 9};
  int32_t out[3] = {};
  ASSERT_EQ(fsAllReduce(fsHostBuf(data), fsHostBuf(out), 3, fsInt32, fsAvg, comm_, nullptr),
            fsSuccess);
  EXPECT_EQ(out[1], -7);
}

TEST_F(SingleRank, AbortedCommRefusesWork) {
  ASSERT_EQ(fsCommAbort(comm_), fsSuccess);
  fsResult_t async = fsSuccess;
  ASSERT_EQ(fsCommGetAsyncError(comm_, &async), fsSuccess);
  EXPECT_EQ(async, fsAborted);
  float x = 1;
  EXPECT_EQ(fsAllReduce(fsHostBuf(&x), fsHostBuf(&x), 1, fsFloat32, fsSum, comm_, nullptr),
            fsInvalidUsage);
}

TEST(CommBootstrap, UniqueIdRoundTripsAndRejectsGarbage) {
  fsUniqueId id, back;
  ASSERT_EQ(fsGetUniqueId(&id), fsSuccess);
  char text[FS_UNIQUE_ID_BYTES];
  ASSERT_EQ(fsUniqueIdToString(&id, text, sizeof(text)), fsSuccess);
  ASSERT_EQ(fsUniqueIdFromString(text, &back), fsSuccess);
  EXPECT_EQ(std::memcmp(&id, &back, sizeof(id)), 0);
  EXPECT_EQ(fsUniqueIdFromString("localhost", &back), fsInvalidArgument);
  EXPECT_EQ(fsUniqueIdFromString("host:99999:abc", &back), fsInvalidArgument);
  EXPECT_EQ(fsUniqueIdFromString("host:80:xyz", &back), fsInvalidArgument);
  EXPECT_EQ(fsCommInitRank(nullptr, 2, id, 0), fsInvalidArgument);
  fsComm_t comm = nullptr;
  EXPECT_EQ(fsCommInitRank(&comm, 2, id, 5), fsInvalidArgument);
  EXPECT_NE(std::strstr(fsGetLastError(), "rank 5"), nullptr) << fsGetLastError();
}

TEST(CommBootstrap, RanksThatDisagreeOnSizeAreTold) {
  fsUniqueId id;
  ASSERT_EQ(fsGetUniqueId(&id), fsSuccess);
  fsResult_t results[2];
  std::string messages[2];
  fsConfig config;
  fsConfigInit(&config);
  config.timeout_ms = 5000;
  auto body = [&](int i) {
    fsComm_t comm = nullptr;
    results[i] = fsCommInitRankConfig(&comm, i == 0 ? 2 : 3, id, i, &config);
    messages[i] = fsGetLastError();
    if (comm) fsCommDestroy(comm);
  };
  std::thread a(body, 0), b(body, 1);
  a.join();
  b.join();
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(results[i], fsInvalidArgument) << messages[i];
    EXPECT_NE(messages[i].find("nranks"), std::string::npos) << messages[i];
  }
}

TEST(CommErrors, EveryCodeHasAString) {
  for (int code = 0; code < fsNumResults; ++code)
    EXPECT_STRNE(fsGetErrorString(static_cast<fsResult_t>(code)), "unknown status code");
}

}  // namespace
