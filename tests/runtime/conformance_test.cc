// The backend conformance suite: every device that this build finds runs the same checks of
// allocation, copies, fills, strided copies, stream ordering, events and error paths.
#include <gtest/gtest.h>

#include <cstring>
#include <numeric>
#include <random>
#include <thread>

#include "flagstone/runtime/allocator.h"
#include "flagstone/runtime/device.h"
#include "flagstone/runtime/tensor.h"
#include "support/devices.h"

namespace flagstone::runtime {
namespace {

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> out(n);
  for (auto& b : out) b = static_cast<uint8_t>(rng());
  return out;
}

class Conformance : public ::testing::TestWithParam<Device> {
 protected:
  Device device() const { return GetParam(); }
  Stream stream() const { return Stream::default_stream(device()); }
};

TEST_P(Conformance, ReportsSaneInfo) {
  const DeviceInfo& info = device().info();
  EXPECT_FALSE(info.name.empty());
  EXPECT_FALSE(info.backend.empty());
  EXPECT_GT(info.memory_bytes, 0u);
  EXPECT_GT(info.compute_units, 0);
  EXPECT_EQ(Device::get(device().spec()), device());
}

TEST_P(Conformance, AllocatesAnySizeIncludingZero) {
  for (size_t bytes :
       {size_t{0}, size_t{1}, size_t{3}, size_t{4096}, size_t{1} << 20, (size_t{1} << 20) + 13}) {
    Buffer buffer = Buffer::allocate(device(), bytes);
    EXPECT_EQ(buffer.size(), bytes);
    EXPECT_EQ(buffer.device(), device());
  }
}

TEST_P(Conformance, CachingAllocatorReusesFreedBlocks) {
  CachingAllocator& allocator = device().allocator();
  { Buffer warm = Buffer::allocate(device(), 12345); }
  AllocatorStats before = allocator.stats();
  { Buffer again = Buffer::allocate(device(), 12345); }
  AllocatorStats after = allocator.stats();
  EXPECT_EQ(after.device_allocations, before.device_allocations);
  EXPECT_EQ(after.cache_hits, before.cache_hits + 1);
}

TEST_P(Conformance, RoundTripsOddSizesAndOffsets) {
  for (size_t bytes : {size_t{1}, size_t{3}, size_t{17}, size_t{4097}, size_t{1000003}}) {
    for (size_t offset : {size_t{0}, size_t{1}, size_t{7}, size_t{4096 + 5}}) {
      auto data = random_bytes(bytes, static_cast<uint32_t>(bytes * 31 + offset));
      Buffer buffer = Buffer::allocate(device(), offset + bytes + 11);
      copy_host_to_device(stream(), buffer, offset, data.data(), bytes);
      std::vector<uint8_t> back(bytes, 0xAB);
      copy_device_to_host(stream(), back.data(), buffer, offset, bytes);
      stream().synchronize();
      ASSERT_EQ(back, data) << "bytes=" << bytes << " offset=" << offset;
    }
  }
}

TEST_P(Conformance, SourceMayBeReusedRightAfterHostToDeviceCopy) {
  const size_t bytes = 3 << 20;
  auto data = random_bytes(bytes, 5);
  auto original = data;
  Buffer buffer = Buffer::allocate(device(), bytes);
  copy_host_to_device(stream(), buffer, 0, data.data(), bytes);
  std::fill(data.begin(), data.end(), 0);  // the contract says the source is free again
  std::vector<uint8_t> back(bytes);
  copy_device_to_host(stream(), back.data(), buffer, 0, bytes);
  stream().synchronize();
  EXPECT_EQ(back, original);
}

TEST_P(Conformance, CopiesOnDeviceWithOffsets) {
  const size_t bytes = 100003;
  auto data = random_bytes(bytes, 9);
  Buffer a = Buffer::allocate(device(), bytes);
  Buffer b = Buffer::allocate(device(), bytes + 64);
  copy_host_to_device(stream(), a, 0, data.data(), bytes);
  fill_bytes(stream(), b, 0, bytes + 64, 0);
  copy_device_to_device(stream(), b, 33, a, 5, bytes - 5);
  std::vector<uint8_t> back(bytes + 64);
  copy_device_to_host(stream(), back.data(), b, 0, back.size());
  stream().synchronize();
  for (size_t i = 0; i < 33; ++i) ASSERT_EQ(back[i], 0) << i;
  for (size_t i = 0; i < bytes - 5; ++i) ASSERT_EQ(back[33 + i], data[5 + i]) << i;
  for (size_t i = 33 + bytes - 5; i < back.size(); ++i) ASSERT_EQ(back[i], 0) << i;
}

TEST_P(Conformance, FillsByteRanges) {
  const size_t bytes = 5000;
  Buffer buffer = Buffer::allocate(device(), bytes);
  fill_bytes(stream(), buffer, 0, bytes, 0x11);
  fill_bytes(stream(), buffer, 3, 1001, 0xEE);
  std::vector<uint8_t> back(bytes);
  copy_device_to_host(stream(), back.data(), buffer, 0, bytes);
  stream().synchronize();
  for (size_t i = 0; i < bytes; ++i) {
    ASSERT_EQ(back[i], (i >= 3 && i < 1004) ? 0xEE : 0x11) << i;
  }
}

TEST_P(Conformance, CopiesAcrossDevices) {
  Device cpu;
  const size_t bytes = 77777;
  auto data = random_bytes(bytes, 13);
  Buffer host_side = Buffer::allocate(cpu, bytes);
  Buffer here = Buffer::allocate(device(), bytes + 3);
  copy_host_to_device(Stream::default_stream(cpu), host_side, 0, data.data(), bytes);
  copy_device_to_device(stream(), here, 3, host_side, 0, bytes);
  Buffer back_on_cpu = Buffer::allocate(cpu, bytes);
  copy_device_to_device(Stream::default_stream(cpu), back_on_cpu, 0, here, 3, bytes);
  std::vector<uint8_t> back(bytes);
  copy_device_to_host(Stream::default_stream(cpu), back.data(), back_on_cpu, 0, bytes);
  EXPECT_EQ(back, data);
}

// Strided copies through tensor views, checked against index arithmetic on the host.
TEST_P(Conformance, StridedCopiesOfEveryElementSize) {
  for (DType dtype : {DType::kU8, DType::kF16, DType::kF32, DType::kF64}) {
    size_t elem = dtype_size(dtype);
    const int64_t d0 = 5, d1 = 7, d2 = 9;
    auto data = random_bytes(static_cast<size_t>(d0 * d1 * d2) * elem, 21);
    Tensor t = Tensor::from_host(data.data(), data.size(), {d0, d1, d2}, dtype, device());
    // permute(2, 0, 1) then slice every other row of the middle dim: a non-contiguous view.
    Tensor view = t.permute({2, 0, 1}).slice(2, 1, 7, 2);
    ASSERT_FALSE(view.is_contiguous());
    Tensor dense = view.contiguous();
    ASSERT_TRUE(dense.is_contiguous());
    std::vector<uint8_t> got(dense.nbytes());
    dense.copy_to_host(got.data(), got.size());
    size_t k = 0;
    for (int64_t i2 = 0; i2 < d2; ++i2) {
      for (int64_t i0 = 0; i0 < d0; ++i0) {
        for (int64_t i1 = 1; i1 < 7; i1 += 2, ++k) {
          size_t src = static_cast<size_t>((i0 * d1 + i1) * d2 + i2) * elem;
          ASSERT_EQ(0, std::memcmp(&got[k * elem], &data[src], elem))
              << dtype_name(dtype) << " element " << k;
        }
      }
    }
  }
}

TEST_P(Conformance, StridedCopyIntoNonContiguousDestinationKeepsGaps) {
  std::vector<float> base(6 * 8);
  std::iota(base.begin(), base.end(), 0.0f);
  Tensor dst = Tensor::from_vector(base, {6, 8}, device());
  std::vector<float> patch(6 * 3);
  std::iota(patch.begin(), patch.end(), 1000.0f);
  Tensor src = Tensor::from_vector(patch, {6, 3}, device());
  Tensor window = dst.slice(1, 2, 8, 2);  // columns 2, 4, 6
  window.copy_(src);
  auto got = dst.to_vector<float>();
  for (int r = 0; r < 6; ++r) {
    for (int c = 0; c < 8; ++c) {
      float expected = (c >= 2 && c % 2 == 0) ? 1000.0f + r * 3 + (c - 2) / 2 : base[r * 8 + c];
      ASSERT_EQ(got[r * 8 + c], expected) << r << "," << c;
    }
  }
}

TEST_P(Conformance, BroadcastSourceExpandsOnDevice) {
  Tensor row = Tensor::from_vector(std::vector<int32_t>{1, 2, 3}, {1, 3}, device());
  Tensor full = row.expand({4, 3}).contiguous();
  EXPECT_EQ(full.to_vector<int32_t>(), (std::vector<int32_t>{1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3}));
}

TEST_P(Conformance, StreamRunsWorkInIssueOrder) {
  Stream s = Stream::create(device());
  const size_t bytes = 1 << 20;
  Buffer a = Buffer::allocate(device(), bytes);
  Buffer b = Buffer::allocate(device(), bytes);
  std::vector<uint8_t> back(bytes);
  for (int round = 0; round < 4; ++round) {
    auto data = random_bytes(bytes, 100 + round);
    copy_host_to_device(s, a, 0, data.data(), bytes);
    copy_device_to_device(s, b, 0, a, 0, bytes);
    fill_bytes(s, a, 0, bytes, 0);
    copy_device_to_host(s, back.data(), b, 0, bytes);
    s.synchronize();
    ASSERT_EQ(back, data) << "round " << round;
  }
}

TEST_P(Conformance, EventsOrderWorkAcrossStreams) {
  Stream producer = Stream::create(device());
  Stream consumer = Stream::create(device());
  const size_t bytes = 4 << 20;
  auto data = random_bytes(bytes, 77);
  Buffer a = Buffer::allocate(device(), bytes);
  Buffer b = Buffer::allocate(device(), bytes);
  copy_host_to_device(producer, a, 0, data.data(), bytes);
  Event ready(device());
  ready.record(producer);
  consumer.wait(ready);
  copy_device_to_device(consumer, b, 0, a, 0, bytes);
  std::vector<uint8_t> back(bytes);
  copy_device_to_host(consumer, back.data(), b, 0, bytes);
  consumer.synchronize();
  EXPECT_EQ(back, data);
  EXPECT_TRUE(ready.query());
}

TEST_P(Conformance, EventsMeasureElapsedTime) {
  const size_t bytes = 16 << 20;
  Buffer a = Buffer::allocate(device(), bytes);
  Buffer b = Buffer::allocate(device(), bytes);
  Event start(device()), end(device());
  start.record(stream());
  for (int i = 0; i < 4; ++i) copy_device_to_device(stream(), b, 0, a, 0, bytes);
  end.record(stream());
  end.synchronize();
  EXPECT_TRUE(end.query());
  float ms = start.elapsed_ms(end);
  EXPECT_GE(ms, 0.0f);
  EXPECT_LT(ms, 60000.0f);
}

TEST_P(Conformance, PinnedHostBufferCopies) {
  const size_t bytes = 1 << 20;
  PinnedHostBuffer pinned(device(), bytes);
  ASSERT_NE(pinned.data(), nullptr);
  EXPECT_EQ(pinned.is_pinned(), device().info().caps.pinned_host);
  auto data = random_bytes(bytes, 3);
  std::memcpy(pinned.data(), data.data(), bytes);
  Buffer buffer = Buffer::allocate(device(), bytes);
  copy_host_to_device(stream(), buffer, 0, pinned.data(), bytes);
  std::memset(pinned.data(), 0, bytes);
  stream().synchronize();
  copy_device_to_host(stream(), pinned.data(), buffer, 0, bytes);
  stream().synchronize();
  EXPECT_EQ(0, std::memcmp(pinned.data(), data.data(), bytes));
}

TEST_P(Conformance, ConcurrentStreamsFromThreads) {
  const size_t bytes = 1 << 20;
  std::vector<std::thread> threads;
  std::vector<int> ok(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      Stream s = Stream::create(device());
      auto data = random_bytes(bytes, 1000 + t);
      Buffer buffer = Buffer::allocate(device(), bytes);
      std::vector<uint8_t> back(bytes);
      for (int i = 0; i < 5; ++i) {
        copy_host_to_device(s, buffer, 0, data.data(), bytes);
        copy_device_to_host(s, back.data(), buffer, 0, bytes);
        s.synchronize();
        if (back != data) return;
      }
      ok[t] = 1;
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(ok, (std::vector<int>{1, 1, 1, 1}));
}

TEST_P(Conformance, OutOfRangeCopiesAreRejected) {
  Buffer buffer = Buffer::allocate(device(), 100);
  std::vector<uint8_t> host(200);
  try {
    copy_host_to_device(stream(), buffer, 50, host.data(), 51);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find(device().spec()), std::string::npos) << e.what();
  }
  EXPECT_THROW(copy_device_to_host(stream(), host.data(), buffer, 101, 0), Error);
  Buffer other = Buffer::allocate(device(), 10);
  EXPECT_THROW(copy_device_to_device(stream(), other, 0, buffer, 0, 11), Error);
  EXPECT_THROW(fill_bytes(stream(), buffer, 99, 2, 0), Error);
}

TEST_P(Conformance, ImpossibleAllocationIsOutOfMemory) {
  try {
    Buffer huge = Buffer::allocate(device(), size_t{1} << 60);
    FAIL() << "allocated 2^60 bytes";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kOutOfMemory) << e.what();
  }
  // The device still works afterwards.
  Buffer fine = Buffer::allocate(device(), 64);
  EXPECT_EQ(fine.size(), 64u);
}

TEST_P(Conformance, StreamOfAnotherDeviceIsRejected) {
  if (device().is_cpu()) GTEST_SKIP() << "needs a second device";
  Buffer buffer = Buffer::allocate(device(), 16);
  std::vector<uint8_t> host(16);
  EXPECT_THROW(copy_host_to_device(Stream::default_stream(Device()), buffer, 0, host.data(), 16),
               Error);
}

FLAGSTONE_INSTANTIATE_ON_ALL_DEVICES(Conformance);

TEST(Registry, UnknownDevicesNameTheSpec) {
  try {
    Device::get("tpu:0");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kNotFound);
    EXPECT_NE(std::string(e.what()).find("tpu:0"), std::string::npos);
  }
  EXPECT_THROW(Device::get("cpu:7"), Error);
  EXPECT_THROW(Device::get("cpu:x"), Error);
  EXPECT_THROW(Device::get("cpu:"), Error);
  EXPECT_EQ(Device::get("cpu"), Device());
}

TEST(Registry, EveryBackendHasAStatus) {
  bool saw_cpu = false;
  for (const auto& status : backend_statuses()) {
    if (status.name == "cpu") saw_cpu = status.available;
    if (!status.available) {
      EXPECT_FALSE(status.reason.empty()) << status.name;
    }
  }
  EXPECT_TRUE(saw_cpu);
}

}  // namespace
}  // namespace flagstone::runtime
