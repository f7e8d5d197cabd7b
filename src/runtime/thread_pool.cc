// The worker pool behind cpu kernels: one job at a time, split into chunks that workers and the
// caller claim from a shared counter.
#include "flagstone/runtime/thread_pool.h"

#include <algorithm>
#include <cstdlib>
#include <memory>

#include "flagstone/base/error.h"

namespace flagstone::runtime {
namespace {
thread_local bool t_inside_pool = false;
}

ThreadPool::ThreadPool(int num_threads) {
  FS_CHECK(num_threads >= 1, kInvalidArgument, "thread pool needs at least 1 thread, got ",
           num_threads);
  for (int i = 1; i < num_threads; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  work_ready_.notify_all();
  for (auto& worker : workers_) worker.join();
}

void ThreadPool::run_chunks() {
  for (;;) {
    int64_t chunk;
    {
      std::lock_guard lock(mutex_);
      if (next_chunk_ >= num_chunks_) return;
      chunk = next_chunk_++;
    }
    int64_t begin = chunk * chunk_;
    int64_t end = std::min(n_, begin + chunk_);
    try {
      (*body_)(begin, end);
    } catch (...) {
      std::lock_guard lock(mutex_);
      if (!error_) error_ = std::current_exception();
    }
    std::lock_guard lock(mutex_);
    if (++chunks_done_ == num_chunks_) work_done_.notify_all();
  }
}

void ThreadPool::worker_loop() {
  t_inside_pool = true;
  uint64_t seen = 0;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      work_ready_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
    }
    run_chunks();
  }
}

void ThreadPool::parallel_for(int64_t n, int64_t grain,
                              const std::function<void(int64_t, int64_t)>& body) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int64_t max_chunks = static_cast<int64_t>(num_threads()) * 4;
  if (t_inside_pool || workers_.empty() || n <= grain) {
    body(0, n);
    return;
  }
  std::lock_guard call_lock(call_mutex_);
  {
    std::lock_guard lock(mutex_);
    n_ = n;
    chunk_ = std::max(grain, (n + max_chunks - 1) / max_chunks);
    num_chunks_ = (n + chunk_ - 1) / chunk_;
    next_chunk_ = 0;
    chunks_done_ = 0;
    body_ = &body;
    error_ = nullptr;
    ++generation_;
  }
  work_ready_.notify_all();
  t_inside_pool = true;
  run_chunks();
  t_inside_pool = false;
  std::exception_ptr error;
  {
    std::unique_lock lock(mutex_);
    work_done_.wait(lock, [&] { return chunks_done_ == num_chunks_; });
    body_ = nullptr;
    error = error_;
  }
  if (error) std::rethrow_exception(error);
}

namespace {

int default_threads() {
  if (const char* env = std::getenv("FLAGSTONE_NUM_THREADS")) {
    int value = std::atoi(env);
    if (value >= 1) return value;
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

std::mutex g_pool_mutex;
std::unique_ptr<ThreadPool>& pool_slot() {
  static auto* slot = new std::unique_ptr<ThreadPool>();  // never destroyed: no exit-order races
  return *slot;
}

}  // namespace

ThreadPool& cpu_thread_pool() {
  std::lock_guard lock(g_pool_mutex);
  auto& slot = pool_slot();
  if (!slot) slot = std::make_unique<ThreadPool>(default_threads());
  return *slot;
}

void set_cpu_threads(int num_threads) {
  FS_CHECK(num_threads >= 1, kInvalidArgument, "cpu thread count must be >= 1, got ", num_threads);
  std::lock_guard lock(g_pool_mutex);
  pool_slot() = std::make_unique<ThreadPool>(num_threads);
}

int cpu_threads() {
  return cpu_thread_pool().num_threads();
}

}  // namespace flagstone::runtime
