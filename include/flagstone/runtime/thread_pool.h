// A fixed pool of worker threads with a blocking parallel_for, used by the cpu backend and every
// cpu kernel. The process-wide pool's size comes from FLAGSTONE_NUM_THREADS or the core count.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace flagstone::runtime {

class ThreadPool {
 public:
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls body(begin, end) over disjoint chunks covering [0, n), each at least `grain` long,
  // on the workers and the calling thread; returns when all are done. The first exception a
  // chunk throws is rethrown here. Nested calls from inside a body run inline.
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& body);

 private:
  void worker_loop();
  void run_chunks();

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable work_ready_;
  std::condition_variable work_done_;
  std::mutex call_mutex_;  // one parallel_for at a time
  const std::function<void(int64_t, int64_t)>* body_ = nullptr;
  int64_t n_ = 0;
  int64_t chunk_ = 0;
  int64_t next_chunk_ = 0;
  int64_t num_chunks_ = 0;
  int64_t chunks_done_ = 0;
  uint64_t generation_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
};

// The process-wide pool used for cpu work.
ThreadPool& cpu_thread_pool();
// Sets the size of the process-wide pool; call before first use (later calls rebuild it).
void set_cpu_threads(int num_threads);
int cpu_threads();

}  // namespace flagstone::runtime
