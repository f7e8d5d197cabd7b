// The NCCL watchdog thread: polls the oldest watched event (they complete in queue order on one
// stream, and a late one on another stream is still caught by its own deadline) and NCCL's async
// error, about every millisecond while calls are in flight, sleeping otherwise.
#include "nccl_watchdog.h"

#include <chrono>

#include "nccl_engine.h"

namespace flagstone::comm {

NcclWatchdog::NcclWatchdog(fsComm* comm, NcclEngine* engine) : comm_(comm), engine_(engine) {
  thread_ = std::thread([this] { loop(); });
}

NcclWatchdog::~NcclWatchdog() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_one();
  thread_.join();
  for (const Pending& item : pending_) cudaEventDestroy(item.event);
  for (cudaEvent_t event : spare_) cudaEventDestroy(event);
}

void NcclWatchdog::watch(cudaStream_t stream, const char* op) {
  // One short critical section per call: the watchdog thread holds the lock only to look at or
  // pop the queue's front.
  std::unique_lock<std::mutex> lock(mutex_);
  if (fired_) return;  // the comm is failed already; the caller's next call says so
  cudaEvent_t event = nullptr;
  if (!spare_.empty()) {
    event = spare_.back();
    spare_.pop_back();
  } else {
    check_cuda(cudaEventCreateWithFlags(&event, cudaEventDisableTiming), "cudaEventCreate", comm_);
  }
  cudaError_t status = cudaEventRecord(event, stream);
  if (status != cudaSuccess) {
    spare_.push_back(event);
    check_cuda(status, "cudaEventRecord", comm_);
  }
  bool was_idle = pending_.empty();
  pending_.push_back(
      {event, Clock::now() + std::chrono::milliseconds(comm_->config.timeout_ms), op});
  lock.unlock();
  if (was_idle) wake_.notify_one();
}

std::string NcclWatchdog::verdict() {
  std::lock_guard<std::mutex> lock(mutex_);
  return verdict_;
}

void NcclWatchdog::fire(fsResult_t code, const std::string& message) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    fired_ = true;
    verdict_ = message;
  }
  // The reason first, so that the caller's next call can say why the comm is failed.
  {
    std::lock_guard<std::mutex> lock(comm_->failure_mutex);
    comm_->failure_reason = message;
  }
  mark_failed(comm_, code);
  nccl_abort(*engine_);
}

void NcclWatchdog::loop() {
  cudaSetDevice(engine_->device_index);
  for (;;) {
    Pending oldest;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stop_ || (!pending_.empty() && !fired_); });
      if (stop_) return;
      oldest = pending_.front();
    }
    // Only this thread pops, so `oldest` stays the front; the caller's thread is never held up
    // by the queries (they run without the lock).
    if (cudaEventQuery(oldest.event) != cudaErrorNotReady) {
      std::lock_guard<std::mutex> lock(mutex_);
      pending_.pop_front();
      spare_.push_back(oldest.event);
      continue;
    }
    fsResult_t async = nccl_async_error(*engine_);
    if (async != fsSuccess) {
      fire(async, detail::concat(oldest.op, " (rank ", comm_->rank, " on ", comm_->config.device,
                                 "): NCCL reported an asynchronous error (",
                                 fsGetErrorString(async), "); a peer died or failed"));
    } else if (Clock::now() >= oldest.deadline) {
      fire(fsTimeout,
           detail::concat(oldest.op, " (rank ", comm_->rank, " on ", comm_->config.device,
                          "): did not complete within ", comm_->config.timeout_ms,
                          " ms (a peer is hung, dead, or did not call the same operation); ",
                          "the NCCL communicator was aborted"));
    }
    std::unique_lock<std::mutex> lock(mutex_);
    wake_.wait_for(lock, std::chrono::milliseconds(1), [&] { return stop_; });
  }
}

}  // namespace flagstone::comm

namespace flagstone::comm {

namespace {
// Calls issued inside an open NCCL group start at ncclGroupEnd: watch them from there.
struct Deferred {
  NcclEngine* engine;
  fsComm* comm;
  cudaStream_t stream;
  const char* op;
};
thread_local int t_group_depth = 0;
thread_local std::vector<Deferred> t_deferred;
}  // namespace

void watch_nccl(NcclEngine& engine, fsComm* comm, cudaStream_t stream, const char* op) {
  if (!comm->config.nccl_watchdog) return;
  if (t_group_depth > 0) {
    t_deferred.push_back({&engine, comm, stream, op});
    return;
  }
  if (!engine.watchdog) engine.watchdog = std::make_unique<NcclWatchdog>(comm, &engine);
  engine.watchdog->watch(stream, op);
}

bool nccl_covers_all(fsComm* comm) {
  return comm->nccl && comm->nccl->covers_all;
}

bool nccl_group_start(fsComm* comm) {
  if (!nccl_covers_all(comm)) return false;
  const NcclApi* api = comm->nccl->api;
  check_nccl(api, api->GroupStart(), "ncclGroupStart", comm);
  ++t_group_depth;
  return true;
}

void nccl_group_end(fsComm* comm) {
  const NcclApi* api = comm->nccl->api;
  --t_group_depth;
  std::vector<Deferred> deferred;
  if (t_group_depth == 0) deferred.swap(t_deferred);
  check_nccl(api, api->GroupEnd(), "ncclGroupEnd", comm);
  for (const Deferred& item : deferred) watch_nccl(*item.engine, item.comm, item.stream, item.op);
}

}  // namespace flagstone::comm
