// Helpers shared by the cuda timing tools (gemv, quant, decode attention): calls recorded once in
// a CUDA graph and replayed, the device copy bandwidth they are compared against, random weights.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <vector>

#include "flagstone/base/dtype.h"
#include "flagstone/base/half.h"

#include "flagstone/runtime/device.h"
#include "flagstone/runtime/graph.h"
#include "flagstone/runtime/tensor.h"

namespace flagstone::ops::test {

// Median microseconds per call of `calls` recorded once in a graph and replayed `reps` times.
// The calls run once before recording, so handles, workspaces and scratch are made outside the
// capture.
inline double graph_us(const runtime::Device& dev, int calls, int reps,
                       const std::function<void(int)>& one) {
  for (int i = 0; i < calls; ++i) one(i);
  auto graph = runtime::Graph::capture(
      dev,
      [&] {
        for (int i = 0; i < calls; ++i) one(i);
      },
      dev.allocator().create_pool());
  runtime::Stream stream = runtime::Stream::default_stream(dev);
  graph.replay();
  std::vector<double> us;
  for (int r = 0; r < reps; ++r) {
    runtime::Event start(dev), end(dev);
    start.record(stream);
    graph.replay();
    end.record(stream);
    end.synchronize();
    us.push_back(1e3 * start.elapsed_ms(end) / calls);
  }
  std::sort(us.begin(), us.end());
  return us[us.size() / 2];
}

// Device-to-device copy of 1 GiB, in GB/s counting read + write bytes (the median of ten timed
// copies after two warm-ups): the bandwidth the tools report their kernels against.
inline double copy_gbps(const runtime::Device& dev) {
  const size_t bytes = size_t{1} << 30;
  runtime::Buffer a = runtime::Buffer::allocate(dev, bytes),
                  b = runtime::Buffer::allocate(dev, bytes);
  runtime::Stream stream = runtime::Stream::default_stream(dev);
  runtime::fill_bytes(stream, a, 0, bytes, 1);
  std::vector<double> ms;
  for (int i = 0; i < 12; ++i) {
    runtime::Event start(dev), end(dev);
    start.record(stream);
    runtime::copy_device_to_device(stream, b, 0, a, 0, bytes);
    end.record(stream);
    end.synchronize();
    if (i >= 2) ms.push_back(start.elapsed_ms(end));
  }
  std::sort(ms.begin(), ms.end());
  return 2.0 * static_cast<double>(bytes) / (ms[ms.size() / 2] * 1e6);
}

// A [n, k] weight of GGUF q8_0 / q4_0 blocks: valid f16 scales in [0.005, 0.02), pseudo-random
// quants.
inline Tensor random_quant(DType q, int64_t n, int64_t k, uint64_t seed,
                           const runtime::Device& dev) {
  const size_t block = dtype_info(q).block_bytes;
  const size_t bytes = static_cast<size_t>(n * k / 32) * block;
  std::vector<uint8_t> host(bytes);
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i + 8 <= bytes; i += 8) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    std::memcpy(&host[i], &s, 8);
  }
  for (size_t b = 0; b < bytes; b += block) {
    uint16_t h = Half(0.005f + 0.015f * static_cast<float>(host[b + 2]) / 255.0f).bits;
    std::memcpy(&host[b], &h, 2);
  }
  return Tensor::from_host(host.data(), bytes, {n, k}, q, dev);
}

}  // namespace flagstone::ops::test
