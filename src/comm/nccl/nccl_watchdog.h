// The per-operation timeout of the NCCL path: NCCL calls return once queued, so a helper thread
// watches each call's completion event against the comm's timeout and NCCL's async error.
#pragma once

#include <cuda_runtime.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "../comm_impl.h"

namespace flagstone::comm {

class NcclEngine;

// When a watched call has not completed by its deadline, or NCCL reports an async error (a peer
// died), the watchdog aborts the NCCL communicator (its kernels exit and the stream drains),
// marks the comm failed (fsTimeout / fsRemoteError, later calls refuse) and cuts the host
// connections so peers blocked in the host transport fail too.
class NcclWatchdog {
 public:
  NcclWatchdog(fsComm* comm, NcclEngine* engine);
  ~NcclWatchdog();
  NcclWatchdog(const NcclWatchdog&) = delete;
  NcclWatchdog& operator=(const NcclWatchdog&) = delete;

  // Watches the work queued on `stream` so far, as operation `op`.
  void watch(cudaStream_t stream, const char* op);
  // What the watchdog did, for error messages ("" while it has done nothing).
  std::string verdict();

 private:
  struct Pending {
    cudaEvent_t event;
    Clock::time_point deadline;
    const char* op;
  };
  void loop();
  void fire(fsResult_t code, const std::string& message);

  fsComm* comm_;
  NcclEngine* engine_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Pending> pending_;
  std::vector<cudaEvent_t> spare_;
  std::string verdict_;
  bool stop_ = false;
  bool fired_ = false;
  std::thread thread_;
};

}  // namespace flagstone::comm
