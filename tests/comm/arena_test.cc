// The shared-memory arena in one process: three ranks on threads, rank 0 a device member whose
// copies run late and asynchronously on two fake copy queues (the CUDA leader's path, checked
// here without a GPU), ranks 1 and 2 host members; results against sums computed here.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "comm_impl.h"
#include "host/arena.h"

namespace fc = flagstone::comm;

namespace {

// A copy engine: runs queued copies in order on its own thread, each after a short random delay,
// and marks them done, like a CUDA stream with an event per copy.
class CopyQueue {
 public:
  explicit CopyQueue(unsigned seed) : random_(seed), thread_([this] { loop(); }) {}
  ~CopyQueue() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_one();
    thread_.join();
  }
  void push(std::function<void()> copy) {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.push_back(std::move(copy));
    wake_.notify_one();
  }

 private:
  void loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      wake_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;
      auto copy = std::move(queue_.front());
      queue_.pop_front();
      int delay = static_cast<int>(random_() % 300);
      lock.unlock();
      std::this_thread::sleep_for(std::chrono::microseconds(delay));
      copy();
      lock.lock();
    }
  }
  std::mt19937 random_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> queue_;
  bool stop_ = false;
  std::thread thread_;
};

class FakeDevice : public fc::ArenaDevice {
 public:
  FakeDevice(char* memory, size_t esize, size_t chunks)
      : memory_(memory), esize_(esize), out_(chunks), in_(chunks), d2h_(1), h2d_(2) {}
  void copy_out(size_t index, char* slot, size_t first, size_t n) override {
    d2h_.push([=, this] {
      std::memcpy(slot, memory_ + first * esize_, n * esize_);
      out_[index].store(true);
    });
  }
  bool out_done(size_t index) override { return out_[index].load(); }
  void copy_in(size_t index, const char* result, size_t first, size_t n) override {
    h2d_.push([=, this] {
      std::memcpy(memory_ + first * esize_, result, n * esize_);
      in_[index].store(true);
    });
  }
  bool in_done(size_t index) override { return in_[index].load(); }

 private:
  char* memory_;
  size_t esize_;
  std::vector<std::atomic<bool>> out_, in_;
  CopyQueue d2h_, h2d_;
};

float value(int rank, size_t i) {
  return static_cast<float>(static_cast<int>((rank * 5 + i * 7) % 11) - 5);
}

TEST(Arena, DeviceMemberAndHostMembersAgreeWithTheSum) {
  const int n = 3;
  const size_t slot = 4096;  // 1024 f32 per chunk: the calls below run 1 to 40 chunks
  fsUniqueId id;
  ASSERT_EQ(fsGetUniqueId(&id), fsSuccess);
  std::string errors[n];
  auto rank_main = [&](int rank) {
    fsComm_t comm = nullptr;
    try {
      fsConfig config;
      fsConfigInit(&config);
      config.timeout_ms = 20000;
      if (fsCommInitRankConfig(&comm, n, id, rank, &config) != fsSuccess)
        throw std::runtime_error(fsGetLastError());
      fc::HostOp setup = fc::make_host_op(comm, fc::OpKind::kAllReduce);
      std::string name = "/flagstone-arena-test-" + std::to_string(::getpid());
      auto arena = fc::Arena::open(setup, name, slot, rank == 0, nullptr);
      if (!arena) throw std::runtime_error("the arena could not be opened");
      // Several calls in a row (the chunk counters carry over), odd sizes, sum and average.
      // Sizes alternate so that a member running chunks ahead of the slow device member would
      // meet a different call's chunk sizes (the descriptor of a slot must not be overwritten
      // before every member compared it).
      for (size_t count : {size_t{1}, size_t{1000}, size_t{1025}, size_t{40000}, size_t{3},
                           size_t{9000}, size_t{5}, size_t{20000}, size_t{2}, size_t{4097}}) {
        for (fsRedOp_t redop : {fsSum, fsAvg, fsMax}) {
          std::vector<float> data(count), out(count, -99.0f);
          for (size_t i = 0; i < count; ++i) data[i] = value(rank, i);
          fc::HostOp op = fc::make_host_op(comm, fc::OpKind::kAllReduce);
          if (rank == 0) {
            size_t chunks = (count + slot / 4 - 1) / (slot / 4);
            FakeDevice device(reinterpret_cast<char*>(data.data()), sizeof(float), chunks);
            arena->all_reduce(op, device, count, fsFloat32, redop);
            out = data;
          } else {
            arena->all_reduce(op, reinterpret_cast<const char*>(data.data()),
                              reinterpret_cast<char*>(out.data()), count, fsFloat32, redop, n);
          }
          for (size_t i = 0; i < count; ++i) {
            float want = redop == fsMax ? value(0, i) : 0.0f;
            for (int r = 0; r < n; ++r)
              want = redop == fsMax ? std::max(want, value(r, i)) : want + value(r, i);
            if (redop == fsAvg) want /= static_cast<float>(n);
            if (out[i] != want)
              throw std::runtime_error("count " + std::to_string(count) + " redop " +
                                       std::to_string(redop) + " element " + std::to_string(i) +
                                       ": " + std::to_string(out[i]) + ", want " +
                                       std::to_string(want));
          }
        }
      }
    } catch (const std::exception& error) {
      errors[rank] = error.what();
      if (comm) fsCommAbort(comm);
    }
    if (comm) fsCommDestroy(comm);
  };
  std::vector<std::thread> threads;
  for (int r = 1; r < n; ++r) threads.emplace_back(rank_main, r);
  rank_main(0);
  for (std::thread& thread : threads) thread.join();
  for (int r = 0; r < n; ++r) EXPECT_EQ(errors[r], "") << "rank " << r;
}

}  // namespace
