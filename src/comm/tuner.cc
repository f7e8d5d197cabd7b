// Measures host algorithms per collective, size bucket and topology, and keeps the winners in a
// small text file ("<key> <algo>" per line) shared by every program of the user.
#include "tuner.h"

#include "flagstone/comm/tuning.h"

#include <unistd.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace flagstone::comm {

namespace {

const char* kind_key(OpKind kind) {
  switch (kind) {
    case OpKind::kAllReduce:
      return "allreduce";
    case OpKind::kReduce:
      return "reduce";
    case OpKind::kBroadcast:
      return "broadcast";
    case OpKind::kAllGather:
      return "allgather";
    default:
      return "other";
  }
}

std::string key_of(const TuneTable& table, OpKind kind, size_t bytes) {
  int bucket = bytes ? std::bit_width(bytes) - 1 : 0;
  return detail::concat(kind_key(kind), ".", table.topology, ".b", bucket);
}

std::string topology_of(const fsComm* comm) {
  std::set<uint64_t> hosts;
  std::map<std::string, int> kinds;
  for (const PeerInfo& peer : comm->peers) {
    hosts.insert(peer.host_hash);
    std::string device = peer.device;
    kinds[device.substr(0, device.find(':'))] += 1;
  }
  std::string text = detail::concat("n", comm->nranks, ".h", hosts.size());
  for (const auto& [kind, count] : kinds) text += detail::concat(".", kind, count);
  return text + (comm->shm_pairs > 0 ? ".shm" : ".tcp");
}

// Runs one call of `kind` with `algo` on scratch buffers; every rank passes the same sizes.
void run_once(fsComm* comm, OpKind kind, Algo algo, std::vector<char>& in, std::vector<char>& out,
              size_t count) {
  HostOp op = make_host_op(comm, kind);
  op.algo = algo;
  switch (kind) {
    case OpKind::kAllReduce:
      host_all_reduce(op, in.data(), out.data(), count, fsFloat32, fsSum);
      break;
    case OpKind::kReduce:
      host_reduce(op, in.data(), out.data(), count, fsFloat32, fsSum, 0);
      break;
    case OpKind::kBroadcast:
      host_broadcast(op, in.data(), out.data(), count, fsFloat32, 0);
      break;
    case OpKind::kAllGather:
      host_all_gather(op, in.data(), out.data(), count / comm->nranks, fsFloat32);
      break;
    default:
      break;
  }
}

void save(const TuneTable& table) {
  std::string path = tuning_file();
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  // Merge with what other topologies stored since we loaded, then replace atomically.
  std::map<std::string, std::string> lines;
  std::ifstream old(path);
  for (std::string key, algo; old >> key >> algo;) lines[key] = algo;
  for (const auto& [key, algo] : table.entries) lines[key] = algo_name(algo);
  std::string temp = detail::concat(path, ".", ::getpid(), ".tmp");
  {
    std::ofstream file(temp, std::ios::trunc);
    if (!file) return;  // a read-only cache only costs re-tuning
    for (const auto& [key, algo] : lines) file << key << " " << algo << "\n";
  }
  std::filesystem::rename(temp, path, ec);
  if (ec) std::filesystem::remove(temp, ec);
}

OpKind op_kind_of(const std::string& op) {
  OpKind kind = op == "allreduce"   ? OpKind::kAllReduce
                : op == "reduce"    ? OpKind::kReduce
                : op == "broadcast" ? OpKind::kBroadcast
                : op == "allgather" ? OpKind::kAllGather
                                    : OpKind::kSplit;
  FS_CHECK(kind != OpKind::kSplit, kInvalidArgument, "comm tuning: op '", op,
           "' has no algorithms to choose from (allreduce, reduce, broadcast, allgather)");
  return kind;
}

}  // namespace

std::string tuning_file() {
  std::string dir = env_string("FLAGSTONE_CACHE_DIR", "");
  if (dir.empty()) {
    std::string xdg = env_string("XDG_CACHE_HOME", "");
    std::string home = env_string("HOME", "");
    dir = !xdg.empty()    ? xdg + "/flagstone"
          : !home.empty() ? home + "/.cache/flagstone"
                          : (std::filesystem::temp_directory_path() / "flagstone-cache").string();
  }
  return dir + "/comm_tuning.txt";
}

void load_tuning(fsComm* comm) {
  auto table = std::make_shared<TuneTable>();
  table->topology = topology_of(comm);
  table->tune_on_first_use = env_int("FLAGSTONE_COMM_TUNE", 0) != 0;
  std::string text;
  if (comm->rank == 0) {
    std::ifstream file(tuning_file());
    std::string prefix = "." + table->topology + ".b";
    for (std::string key, algo; file >> key >> algo;)
      if (key.find(prefix) != std::string::npos) text += key + " " + algo + "\n";
  }
  // Everyone uses rank 0's entries, so ranks with different files still pick alike.
  uint64_t length = text.size();
  HostOp size_op = make_host_op(comm, OpKind::kBroadcast);
  size_op.algo = Algo::kTree;
  host_broadcast(size_op, &length, &length, 1, fsUint64, 0);
  text.resize(length);
  if (length) {
    HostOp text_op = make_host_op(comm, OpKind::kBroadcast);
    text_op.algo = Algo::kTree;
    host_broadcast(text_op, text.data(), text.data(), length, fsUint8, 0);
  }
  std::istringstream lines(text);
  for (std::string key, algo; lines >> key >> algo;) {
    try {
      table->entries[key] = parse_algo(algo);
    } catch (const CommError&) {
      // A damaged line only loses its entry; the same on every rank, since rank 0 sent it.
    }
  }
  comm->tuning = table;
}

std::vector<Algo> tune_candidates(OpKind kind) {
  switch (kind) {
    case OpKind::kAllReduce:
      return {Algo::kRing, Algo::kRhd, Algo::kTree};
    case OpKind::kReduce:
    case OpKind::kBroadcast:
      return {Algo::kRing, Algo::kTree};  // ring means the pipelined chain here
    case OpKind::kAllGather:
      return {Algo::kRing, Algo::kDirect};
    default:
      return {};
  }
}

std::vector<TuneTiming> tune(fsComm* comm, OpKind kind, size_t bytes) {
  std::vector<TuneTiming> timings;
  std::vector<Algo> candidates = tune_candidates(kind);
  if (candidates.empty() || !comm->tuning) return timings;
  // Whole f32 elements, a multiple of nranks so all-gather blocks are equal.
  size_t count = std::max<size_t>(bytes / 4, 1);
  if (kind == OpKind::kAllGather) count = std::max<size_t>(count / comm->nranks, 1) * comm->nranks;
  std::vector<char> in(count * 4 + 1, 0), out(count * 4 + 1, 0);
  int iters = static_cast<int>(std::clamp<size_t>((size_t{64} << 20) / (count * 4), 2, 20));
  for (Algo algo : candidates) {
    run_once(comm, kind, algo, in, out, count);  // warm-up
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < iters; ++i) run_once(comm, kind, algo, in, out, count);
    double mine =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / iters;
    double slowest = 0;
    HostOp max_op = make_host_op(comm, OpKind::kAllReduce);
    max_op.algo = Algo::kRhd;
    host_all_reduce(max_op, &mine, &slowest, 1, fsFloat64, fsMax);
    timings.push_back({algo, slowest});
  }
  auto best = std::min_element(timings.begin(), timings.end(),
                               [](const auto& a, const auto& b) { return a.seconds < b.seconds; });
  TuneTable& table = *comm->tuning;
  std::lock_guard<std::mutex> lock(table.mutex);
  table.entries[key_of(table, kind, bytes)] = best->algo;
  if (comm->rank == 0) save(table);
  return timings;
}

Algo tuned_algo(fsComm* comm, OpKind kind, size_t bytes) {
  if (comm->config.algo != Algo::kAuto || !comm->tuning) return comm->config.algo;
  TuneTable& table = *comm->tuning;
  std::string key = key_of(table, kind, bytes);
  {
    std::lock_guard<std::mutex> lock(table.mutex);
    auto it = table.entries.find(key);
    if (it != table.entries.end()) return it->second;
  }
  if (!table.tune_on_first_use || tune_candidates(kind).empty()) return Algo::kAuto;
  tune(comm, kind, bytes);
  std::lock_guard<std::mutex> lock(table.mutex);
  auto it = table.entries.find(key);
  return it != table.entries.end() ? it->second : Algo::kAuto;
}

std::vector<AlgoTiming> tune_algorithms(const Communicator& communicator, const std::string& op,
                                        size_t bytes) {
  fsComm* comm = communicator.get();
  FS_CHECK(comm, kInvalidArgument, "tune_algorithms: the communicator is not initialized");
  OpKind kind = op_kind_of(op);
  std::vector<AlgoTiming> out;
  std::lock_guard<std::mutex> lock(comm->mutex);
  try {
    for (const TuneTiming& timing : tune(comm, kind, bytes))
      out.push_back({algo_name(timing.algo), timing.seconds});
  } catch (const CommError& error) {
    mark_failed(comm, error.code());
    throw;
  }
  return out;
}

std::string algorithm_for(const Communicator& communicator, const std::string& op, size_t bytes) {
  fsComm* comm = communicator.get();
  FS_CHECK(comm, kInvalidArgument, "algorithm_for: the communicator is not initialized");
  OpKind kind = op_kind_of(op);
  if (comm->config.algo != Algo::kAuto || !comm->tuning) return algo_name(comm->config.algo);
  TuneTable& table = *comm->tuning;
  std::lock_guard<std::mutex> lock(table.mutex);
  auto it = table.entries.find(key_of(table, kind, bytes));
  return algo_name(it != table.entries.end() ? it->second : Algo::kAuto);
}

std::string tuning_file_path() {
  return tuning_file();
}

}  // namespace flagstone::comm
