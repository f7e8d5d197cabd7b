// The caching allocator's binning and accounting.
#include <gtest/gtest.h>

#include "flagstone/base/error.h"
#include "flagstone/runtime/allocator.h"
#include "flagstone/runtime/device.h"

namespace flagstone::runtime {
namespace {

TEST(CachingAllocator, RoundsIntoFewBins) {
  EXPECT_EQ(CachingAllocator::round_size(0), 256u);
  EXPECT_EQ(CachingAllocator::round_size(1), 256u);
  EXPECT_EQ(CachingAllocator::round_size(257), 512u);
  EXPECT_EQ(CachingAllocator::round_size((1 << 20) + 1), (1u << 20) + 65536u);
  EXPECT_EQ(CachingAllocator::round_size((64u << 20) + 1), (66u << 20));
  for (size_t bytes : {size_t{5}, size_t{999999}, size_t{12345678}, size_t{300000000}}) {
    EXPECT_GE(CachingAllocator::round_size(bytes), bytes);
  }
}

TEST(CachingAllocator, TracksLiveAndCachedBytes) {
  CachingAllocator& allocator = Device().allocator();
  allocator.empty_cache();
  AllocatorStats start = allocator.stats();
  EXPECT_EQ(start.cached_bytes, 0u);
  {
    Buffer a = Buffer::allocate(Device(), 1000);
    AllocatorStats live = allocator.stats();
    EXPECT_EQ(live.allocated_bytes, start.allocated_bytes + 1024);
    EXPECT_GE(live.peak_allocated_bytes, live.allocated_bytes);
  }
  AllocatorStats freed = allocator.stats();
  EXPECT_EQ(freed.allocated_bytes, start.allocated_bytes);
  EXPECT_EQ(freed.cached_bytes, 1024u);
  allocator.empty_cache();
  EXPECT_EQ(allocator.stats().cached_bytes, 0u);
}

// Graph capture keeps recorded work's memory apart: a block allocated under a pool goes back to
// that pool, never to the shared cache, until the pool dies.
TEST(CachingAllocator, PoolBlocksStayInThePool) {
  Device cpu;
  CachingAllocator& allocator = cpu.allocator();
  allocator.empty_cache();
  std::shared_ptr<AllocatorPool> pool = allocator.create_pool();
  MemHandle pooled = nullptr;
  allocator.set_active_pool(pool);
  {
    Buffer a = Buffer::allocate(cpu, 3000);
    pooled = a.handle();
  }
  allocator.set_active_pool(nullptr);
  {
    // Same bin, outside the pool: the pool's free block must not be handed out.
    Buffer b = Buffer::allocate(cpu, 3000);
    EXPECT_NE(b.handle(), pooled);
  }
  allocator.set_active_pool(pool);
  {
    Buffer c = Buffer::allocate(cpu, 3000);
    EXPECT_EQ(c.handle(), pooled);  // the pool reuses its own block
  }
  allocator.set_active_pool(nullptr);
  // A live block of a pool that dies returns to the shared cache when released.
  allocator.set_active_pool(pool);
  Buffer live = Buffer::allocate(cpu, 5000);
  allocator.set_active_pool(nullptr);
  // Emptying the shared cache leaves the pool's free block alone (b's block goes back).
  allocator.empty_cache();
  uint64_t cached_before = allocator.stats().cached_bytes;
  EXPECT_EQ(cached_before, 3072u);
  pool.reset();  // its free 3000-byte block joins the shared cache
  EXPECT_EQ(allocator.stats().cached_bytes, cached_before);
  {
    Buffer d = Buffer::allocate(cpu, 3000);
    EXPECT_EQ(d.handle(), pooled);
  }
  MemHandle live_handle = live.handle();
  live = Buffer();
  Buffer e = Buffer::allocate(cpu, 5000);
  EXPECT_EQ(e.handle(), live_handle);
  e = Buffer();
  allocator.empty_cache();
  EXPECT_EQ(allocator.stats().cached_bytes, 0u);
}

TEST(CachingAllocator, PoolOfAnotherDeviceIsRefused) {
  auto devices = all_devices();
  for (const Device& other : devices) {
    if (other == Device()) continue;
    auto pool = other.allocator().create_pool();
    EXPECT_THROW(Device().allocator().set_active_pool(pool), Error);
    return;
  }
  GTEST_SKIP() << "only the cpu device is present";
}

}  // namespace
}  // namespace flagstone::runtime
