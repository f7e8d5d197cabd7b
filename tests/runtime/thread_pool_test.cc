// The thread pool covers every index exactly once, propagates exceptions and nests safely.
#include <gtest/gtest.h>

#include <atomic>
#include <vector>

#include "flagstone/base/error.h"
#include "flagstone/runtime/thread_pool.h"

namespace flagstone::runtime {
namespace {

TEST(ThreadPool, CoversEveryIndexOnce) {
  ThreadPool pool(4);
  for (int64_t n : {1, 7, 64, 1000, 100003}) {
    std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
    pool.parallel_for(n, 3, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) hits[static_cast<size_t>(i)]++;
    });
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << n;
  }
}

TEST(ThreadPool, RethrowsTheFirstError) {
  ThreadPool pool(3);
  EXPECT_THROW(pool.parallel_for(100, 1,
                                 [](int64_t begin, int64_t) {
                                   if (begin >= 50) throw_error(ErrorCategory::kInternal, "boom");
                                 }),
               Error);
  // Still usable afterwards.
  std::atomic<int64_t> sum{0};
  pool.parallel_for(10, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) sum += i;
  });
  EXPECT_EQ(sum.load(), 45);
}

TEST(ThreadPool, NestedCallsRunInline) {
  ThreadPool pool(2);
  std::atomic<int64_t> total{0};
  pool.parallel_for(8, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      pool.parallel_for(4, 1, [&](int64_t b2, int64_t e2) { total += e2 - b2; });
    }
  });
  EXPECT_EQ(total.load(), 32);
}

TEST(ThreadPool, GlobalPoolIsConfigurable) {
  set_cpu_threads(3);
  EXPECT_EQ(cpu_threads(), 3);
  EXPECT_THROW(set_cpu_threads(0), Error);
}

}  // namespace
}  // namespace flagstone::runtime
