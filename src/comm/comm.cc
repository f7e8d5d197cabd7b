// Communicator lifecycle of the C API: unique ids, init (bootstrap + mesh + engines), split,
// abort, destroy, queries, and the mapping of exceptions to status codes.
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <new>
#include <numeric>
#include <thread>

#include "engines.h"
#include "flagstone/comm.h"
#include "tuner.h"

using namespace flagstone::comm;
namespace runtime = flagstone::runtime;

fsComm::~fsComm() = default;

namespace flagstone::comm {

namespace {
thread_local std::string t_last_error;

fsResult_t code_of(ErrorCategory category) {
  switch (category) {
    case ErrorCategory::kInvalidArgument:
    case ErrorCategory::kNotFound:
    case ErrorCategory::kFormat:
      return fsInvalidArgument;
    case ErrorCategory::kUnsupported:
      return fsUnsupported;
    case ErrorCategory::kTimeout:
      return fsTimeout;
    case ErrorCategory::kOutOfMemory:
    case ErrorCategory::kBackend:
    case ErrorCategory::kIo:
      return fsSystemError;
    default:
      return fsInternalError;
  }
}
}  // namespace

void set_last_error(const std::string& message) {
  t_last_error = message;
}

fsResult_t map_exception() {
  try {
    throw;
  } catch (const CommError& error) {
    set_last_error(error.message());
    return error.code();
  } catch (const Error& error) {
    set_last_error(error.message());
    return code_of(error.category());
  } catch (const std::bad_alloc&) {
    set_last_error("out of host memory");
    return fsSystemError;
  } catch (const std::exception& error) {
    set_last_error(std::string("internal error: ") + error.what());
    return fsInternalError;
  } catch (...) {
    set_last_error("internal error: unknown exception");
    return fsInternalError;
  }
}

ResolvedConfig resolve_config(const fsConfig* config) {
  ResolvedConfig out;
  out.device = env_string("FLAGSTONE_DEVICE", "cpu");
  out.timeout_ms = env_int("FLAGSTONE_COMM_TIMEOUT_MS", 60000);
  out.algo = parse_algo(env_string("FLAGSTONE_COMM_ALGO", "auto"));
  out.engine = env_string("FLAGSTONE_COMM_ENGINE", "auto");
  out.use_shm = env_int("FLAGSTONE_COMM_SHM", 1) != 0;
  out.check = env_int("FLAGSTONE_COMM_CHECKS", 1) != 0;
  out.chunk_bytes = static_cast<size_t>(env_int("FLAGSTONE_COMM_CHUNK_BYTES", 256 << 10));
  out.stage_bytes = static_cast<size_t>(env_int("FLAGSTONE_COMM_STAGE_BYTES", 4 << 20));
  out.arena_slot_bytes = static_cast<size_t>(env_int("FLAGSTONE_COMM_ARENA_SLOT_BYTES", 16 << 20));
  out.nccl_watchdog = env_int("FLAGSTONE_COMM_NCCL_WATCHDOG", 1) != 0;
  out.arena_bytes =
      env_int("FLAGSTONE_COMM_ARENA", 1) ? env_int("FLAGSTONE_COMM_ARENA_BYTES", 1 << 20) : -1;
  if (config) {
    if (config->device && *config->device) out.device = config->device;
    if (config->timeout_ms > 0) out.timeout_ms = config->timeout_ms;
    if (config->algo && *config->algo) out.algo = parse_algo(config->algo);
    if (config->engine && *config->engine) out.engine = config->engine;
    out.use_shm = config->use_shm != 0;
  }
  if (out.timeout_ms <= 0)
    fail(fsInvalidArgument, "comm timeout must be positive, got ", out.timeout_ms, " ms");
  if (out.chunk_bytes < 64 || out.stage_bytes < 4096 || out.arena_slot_bytes < 4096)
    fail(fsInvalidArgument, "FLAGSTONE_COMM_CHUNK_BYTES must be >= 64, ",
         "FLAGSTONE_COMM_STAGE_BYTES and FLAGSTONE_COMM_ARENA_SLOT_BYTES >= 4096");
#ifndef FLAGSTONE_COMM_MPI
  if (out.engine == "mpi")
    fail(fsUnsupported, "engine mpi: this build of Flagstone has no MPI (FLAGSTONE_MPI=OFF)");
#endif
#ifndef FLAGSTONE_COMM_NCCL
  if (out.engine == "nccl")
    fail(fsUnsupported, "engine nccl: this build of Flagstone has no CUDA/NCCL support");
#endif
  if (out.engine != "auto" && out.engine != "host" && out.engine != "nccl" && out.engine != "mpi")
    fail(fsInvalidArgument, "unknown comm engine '", out.engine,
         "' (FLAGSTONE_COMM_ENGINE / fsConfig.engine): use auto, host, nccl or mpi");
  out.init_timeout_ms =
      std::max<int64_t>(out.timeout_ms, env_int("FLAGSTONE_COMM_INIT_TIMEOUT_MS", 120000));
  return out;
}

void check_usable(fsComm* comm, const char* op) {
  if (!comm) fail(fsInvalidArgument, op, ": comm is NULL");
  if (comm->aborted.load())
    fail(fsInvalidUsage, op, ": rank ", comm->rank, " called on an aborted communicator");
  int error = comm->async_error.load();
  if (error != fsSuccess) {
    std::string reason;
    {
      std::lock_guard<std::mutex> lock(comm->failure_mutex);
      reason = comm->failure_reason;
    }
    fail(fsInvalidUsage, op, ": rank ", comm->rank,
         " called on a communicator broken by an earlier error (",
         fsGetErrorString(static_cast<fsResult_t>(error)), reason.empty() ? "" : ": ", reason,
         "); destroy it and create a new one");
  }
}

HostOp make_host_op(fsComm* comm, OpKind kind) {
  HostOp op{*comm->transport, Deadline::after_ms(comm->config.timeout_ms),
            detail::concat(op_name(kind), " (rank ", comm->rank, " of ", comm->nranks, " on ",
                           comm->config.device, ")")};
  op.seq = comm->seq++;
  op.algo = comm->config.algo;
  op.chunk_bytes = comm->config.chunk_bytes;
  op.check = comm->config.check;
  return op;
}

void mark_failed(fsComm* comm, fsResult_t code) noexcept {
  int expected = fsSuccess;
  comm->async_error.compare_exchange_strong(expected, code);
  if (comm->transport) comm->transport->shutdown_all();
}

}  // namespace flagstone::comm

namespace {

fsComm* init_comm(int nranks, const fsUniqueId& id, int rank, const fsConfig* config) {
  if (nranks < 1) fail(fsInvalidArgument, "fsCommInitRank: nranks must be >= 1, got ", nranks);
  if (rank < 0 || rank >= nranks)
    fail(fsInvalidArgument, "fsCommInitRank: rank ", rank, " is outside [0, ", nranks, ")");
  auto comm = std::make_unique<fsComm>();
  comm->rank = rank;
  comm->nranks = nranks;
  comm->config = resolve_config(config);
  try {
    comm->device = runtime::Device::get(comm->config.device);
  } catch (const flagstone::Error& error) {
    fail(fsInvalidArgument, "fsCommInitRank (rank ", rank, "): device '", comm->config.device,
         "': ", error.message());
  }
  comm->config.device = comm->device.spec();
  comm->host_accessible = comm->device.info().caps.host_accessible || comm->device.is_cpu();
  comm->abort_fd = Fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!comm->abort_fd.valid()) fail(fsSystemError, "fsCommInitRank: eventfd failed");

  Deadline deadline = Deadline::after_ms(comm->config.init_timeout_ms);
  uint16_t port = 0;
  Fd listener = listen_tcp(0, &port);
  PeerInfo self;
  self.rank = rank;
  self.nranks = nranks;
  self.pid = ::getpid();
  self.port = port;
  std::snprintf(self.host, sizeof(self.host), "%s", host_name().c_str());
  std::snprintf(self.device, sizeof(self.device), "%s", comm->config.device.c_str());
  self.host_hash = this_host_hash();
  auto pci = comm->device.info().extra.find("pci_bus_id");
  if (pci != comm->device.info().extra.end() && !pci->second.empty())
    self.device_uid = std::hash<std::string>{}(comm->device.backend() + ":" + pci->second) | 1;
  self.use_shm = comm->config.use_shm ? 1 : 0;
  comm->peers = rendezvous(id, self, deadline, comm->abort_fd.get());
  std::vector<Fd> fds = connect_mesh(comm->peers, rank, listener.get(), comm->peers[0].magic,
                                     deadline, comm->abort_fd.get());
  comm->transport = std::make_unique<Transport>(rank, std::move(fds), comm->abort_fd.get());
  std::vector<bool> same_host(nranks, false);
  for (int r = 0; r < nranks; ++r)
    same_host[r] = r != rank && comm->peers[r].host_hash == self.host_hash &&
                   comm->peers[r].use_shm && self.use_shm;
  comm->shm_pairs = comm->transport->enable_shm(
      same_host, comm->peers[0].magic,
      static_cast<size_t>(env_int("FLAGSTONE_COMM_SHM_BYTES", 4 << 20)), deadline);
  for (const PeerInfo& peer : comm->peers)
    if (std::strncmp(peer.device, "cpu", 3) != 0) comm->any_staged = true;
  // Spin before sleeping only when every rank of this host can have a core to itself.
  int local_ranks = 1;
  for (int r = 0; r < nranks; ++r) local_ranks += same_host[r] ? 1 : 0;
  bool cores_enough = static_cast<int>(std::thread::hardware_concurrency()) >= local_ranks;
  comm->transport->set_spin_us(env_int("FLAGSTONE_COMM_SPIN_US", cores_enough ? 50 : 0));
  load_tuning(comm.get());
#ifdef FLAGSTONE_COMM_NCCL
  comm->nccl = create_nccl_engine(comm.get());
#endif
#ifdef FLAGSTONE_COMM_MPI
  comm->mpi = create_mpi_engine(comm.get());
#endif
  return comm.release();
}

int64_t env_rank_value(std::initializer_list<const char*> names, const char* what) {
  for (const char* name : names) {
    int64_t value = env_int(name, -1);
    if (value >= 0) return value;
  }
  std::string list;
  for (const char* name : names) list += std::string(list.empty() ? "" : ", ") + name;
  fail(fsInvalidArgument, "fsCommInitFromEnv: no ", what, " in the environment (looked at ", list,
       "); start the program with `flagstone launch`, mpirun or srun");
}

}  // namespace

extern "C" {

const char* fsGetErrorString(fsResult_t result) {
  switch (result) {
    case fsSuccess:
      return "success";
    case fsInvalidArgument:
      return "invalid argument";
    case fsInvalidUsage:
      return "invalid usage";
    case fsSystemError:
      return "system error";
    case fsRemoteError:
      return "remote error (a peer died, aborted or failed)";
    case fsTimeout:
      return "timeout";
    case fsAborted:
      return "aborted";
    case fsUnsupported:
      return "unsupported";
    case fsInternalError:
      return "internal error";
    case fsInProgress:
      return "in progress";
    default:
      return "unknown status code";
  }
}

const char* fsGetLastError(void) {
  return t_last_error.c_str();
}

fsResult_t fsGetVersion(int* version) {
  if (!version) return fsInvalidArgument;
  *version = 100;  // major * 10000 + minor * 100 + patch: 0.1.0
  return fsSuccess;
}

fsResult_t fsConfigInit(fsConfig* config) {
  return guard([&] {
    if (!config) fail(fsInvalidArgument, "fsConfigInit: config is NULL");
    *config = fsConfig{};
    config->timeout_ms = 0;
    config->use_shm = 1;
  });
}

fsResult_t fsGetUniqueId(fsUniqueId* id) {
  return guard([&] {
    if (!id) fail(fsInvalidArgument, "fsGetUniqueId: id is NULL");
    ResolvedConfig config = resolve_config(nullptr);
    *id = start_rendezvous(static_cast<uint16_t>(env_int("FLAGSTONE_COMM_PORT", 0)),
                           config.init_timeout_ms);
  });
}

fsResult_t fsUniqueIdToString(const fsUniqueId* id, char* text, size_t capacity) {
  return guard([&] {
    if (!id || !text) fail(fsInvalidArgument, "fsUniqueIdToString: NULL argument");
    size_t length = strnlen(id->internal, sizeof(id->internal));
    if (capacity <= length)
      fail(fsInvalidArgument, "fsUniqueIdToString: capacity ", capacity, " < ", length + 1);
    std::memcpy(text, id->internal, length);
    text[length] = '\0';
  });
}

fsResult_t fsUniqueIdFromString(const char* text, fsUniqueId* id) {
  return guard([&] {
    if (!id || !text) fail(fsInvalidArgument, "fsUniqueIdFromString: NULL argument");
    if (std::strlen(text) >= FS_UNIQUE_ID_BYTES)
      fail(fsInvalidArgument, "fsUniqueIdFromString: id text is too long");
    fsUniqueId parsed;
    std::memset(&parsed, 0, sizeof(parsed));
    std::memcpy(parsed.internal, text, std::strlen(text));
    parse_unique_id(parsed);  // validates
    *id = parsed;
  });
}

fsResult_t fsCommInitRank(fsComm_t* comm, int nranks, fsUniqueId id, int rank) {
  return fsCommInitRankConfig(comm, nranks, id, rank, nullptr);
}

fsResult_t fsCommInitRankConfig(fsComm_t* comm, int nranks, fsUniqueId id, int rank,
                                const fsConfig* config) {
  return guard([&] {
    if (!comm) fail(fsInvalidArgument, "fsCommInitRank: comm is NULL");
    *comm = nullptr;
    *comm = init_comm(nranks, id, rank, config);
  });
}

fsResult_t fsCommInitFromEnv(fsComm_t* comm, const fsConfig* config) {
  return guard([&] {
    if (!comm) fail(fsInvalidArgument, "fsCommInitFromEnv: comm is NULL");
    *comm = nullptr;
    int rank = static_cast<int>(env_rank_value(
        {"FLAGSTONE_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "SLURM_PROCID"}, "rank"));
    int nranks = static_cast<int>(env_rank_value(
        {"FLAGSTONE_WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS"}, "size"));
    fsUniqueId id;
    std::string text = env_string("FLAGSTONE_COMM_ID", "");
    std::string root = env_string("FLAGSTONE_COMM_ROOT", "");
    if (!text.empty()) {
      if (fsUniqueIdFromString(text.c_str(), &id) != fsSuccess)
        fail(fsInvalidArgument, "FLAGSTONE_COMM_ID: ", fsGetLastError());
    } else if (!root.empty()) {
      // host:port known to every rank in advance (like MASTER_ADDR/PORT); the magic comes from
      // the job id so two jobs on one port cannot join each other.
      size_t colon = root.rfind(':');
      if (colon == std::string::npos)
        fail(fsInvalidArgument, "FLAGSTONE_COMM_ROOT='", root, "' is not host:port");
      UniqueIdParts parts;
      parts.host = root.substr(0, colon);
      parts.port = static_cast<uint16_t>(std::atoi(root.c_str() + colon + 1));
      std::string job = env_string("SLURM_JOB_ID", env_string("OMPI_MCA_ess_base_jobid", "0"));
      parts.magic = std::hash<std::string>{}("flagstone:" + root + ":" + job) | 1;
      if (rank == 0)
        start_rendezvous(parts.port, resolve_config(config).init_timeout_ms, parts.magic);
      id = make_unique_id(parts);
    } else {
#ifdef FLAGSTONE_COMM_MPI
      if (!mpi_share_unique_id(&id, rank, nranks))
#endif
        fail(fsInvalidArgument, "fsCommInitFromEnv: rank ", rank, " of ", nranks,
             " found neither FLAGSTONE_COMM_ID nor FLAGSTONE_COMM_ROOT=host:port");
    }
    *comm = init_comm(nranks, id, rank, config);
  });
}

fsResult_t fsCommSplit(fsComm_t comm, int color, int key, fsComm_t* newcomm,
                       const fsConfig* config) {
  return guard([&] {
    check_usable(comm, "fsCommSplit");
    if (!newcomm) fail(fsInvalidArgument, "fsCommSplit: newcomm is NULL");
    *newcomm = nullptr;
    std::lock_guard<std::mutex> lock(comm->mutex);
    // Everyone learns every (color, key); the lowest old rank of each color serves its
    // rendezvous and publishes the id in the same all-gather round.
    std::vector<int32_t> mine = {color, key};
    std::vector<int32_t> all(2 * comm->nranks);
    HostOp op = make_host_op(comm, OpKind::kSplit);
    try {
      host_all_gather(op, mine.data(), all.data(), 2, fsInt32);
      int leader = -1;
      std::vector<std::pair<int, int>> members;  // (key, old rank)
      for (int r = 0; r < comm->nranks; ++r) {
        if (all[2 * r] != color || color < 0) continue;
        if (leader < 0) leader = r;
        members.push_back({all[2 * r + 1], r});
      }
      fsUniqueId id;
      std::memset(&id, 0, sizeof(id));
      if (leader == comm->rank) id = start_rendezvous(0, comm->config.init_timeout_ms);
      std::vector<fsUniqueId> ids(comm->nranks);
      HostOp op2 = make_host_op(comm, OpKind::kSplit);
      host_all_gather(op2, &id, ids.data(), sizeof(fsUniqueId), fsUint8);
      if (color < 0) return;
      std::sort(members.begin(), members.end());
      int new_rank = 0;
      for (size_t i = 0; i < members.size(); ++i)
        if (members[i].second == comm->rank) new_rank = static_cast<int>(i);
      fsConfig inherited;
      fsConfigInit(&inherited);
      std::string device = comm->config.device;
      inherited.device = device.c_str();
      inherited.timeout_ms = comm->config.timeout_ms;
      // The MPI engine spans MPI_COMM_WORLD only, so a split of it runs on the host engine.
      inherited.engine = comm->config.engine == "mpi" ? "host" : comm->config.engine.c_str();
      inherited.algo = algo_name(comm->config.algo);
      *newcomm = init_comm(static_cast<int>(members.size()), ids[leader], new_rank,
                           config ? config : &inherited);
    } catch (const CommError& error) {
      if (error.code() != fsInvalidArgument) mark_failed(comm, error.code());
      throw;
    }
  });
}

fsResult_t fsCommDestroy(fsComm_t comm) {
  return guard([&] {
    if (!comm) fail(fsInvalidArgument, "fsCommDestroy: comm is NULL");
    delete comm;
  });
}

fsResult_t fsCommAbort(fsComm_t comm) {
  if (!comm) {
    set_last_error("fsCommAbort: comm is NULL");
    return fsInvalidArgument;
  }
  // Only async-signal-safe style steps: flag, wake the poller, cut the connections.
  comm->aborted.store(true);
  int expected = fsSuccess;
  comm->async_error.compare_exchange_strong(expected, fsAborted);
  uint64_t one = 1;
  if (comm->abort_fd.valid()) (void)!::write(comm->abort_fd.get(), &one, sizeof(one));
  if (comm->transport) comm->transport->shutdown_all();
#ifdef FLAGSTONE_COMM_NCCL
  if (comm->nccl) nccl_abort(*comm->nccl);
#endif
  return fsSuccess;
}

fsResult_t fsCommGetAsyncError(fsComm_t comm, fsResult_t* async_error) {
  return guard([&] {
    if (!comm || !async_error) fail(fsInvalidArgument, "fsCommGetAsyncError: NULL argument");
    *async_error = static_cast<fsResult_t>(comm->async_error.load());
#ifdef FLAGSTONE_COMM_NCCL
    if (*async_error == fsSuccess && comm->nccl) *async_error = nccl_async_error(*comm->nccl);
#endif
  });
}

fsResult_t fsCommCount(fsComm_t comm, int* count) {
  return guard([&] {
    if (!comm || !count) fail(fsInvalidArgument, "fsCommCount: NULL argument");
    *count = comm->nranks;
  });
}

fsResult_t fsCommUserRank(fsComm_t comm, int* rank) {
  return guard([&] {
    if (!comm || !rank) fail(fsInvalidArgument, "fsCommUserRank: NULL argument");
    *rank = comm->rank;
  });
}

fsResult_t fsCommDevice(fsComm_t comm, char* spec, size_t capacity) {
  return guard([&] {
    if (!comm || !spec) fail(fsInvalidArgument, "fsCommDevice: NULL argument");
    if (capacity <= comm->config.device.size())
      fail(fsInvalidArgument, "fsCommDevice: capacity ", capacity, " is too small");
    std::snprintf(spec, capacity, "%s", comm->config.device.c_str());
  });
}

}  // extern "C"
