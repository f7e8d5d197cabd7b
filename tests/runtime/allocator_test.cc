// The caching allocator's binning and accounting.
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace flagstone::runtime
