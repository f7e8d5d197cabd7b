// Graph capture through the runtime: recorded copies replay on new input data, a capture that
// synchronizes fails with a clear error and leaves the stream usable, and devices without
// recording say so. Runs on every device; only CUDA devices record.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "flagstone/base/error.h"
#include "flagstone/runtime/graph.h"
#include "flagstone/runtime/tensor.h"
#include "support/devices.h"

namespace flagstone::runtime {
namespace {

class GraphTest : public ::testing::TestWithParam<Device> {};

TEST_P(GraphTest, ReplaysRecordedCopiesOnNewData) {
  const Device& device = GetParam();
  if (!Graph::supported(device)) GTEST_SKIP() << device.spec() << " cannot record graphs";
  std::vector<float> first(1000), second(1000);
  for (size_t i = 0; i < first.size(); ++i) {
    first[i] = static_cast<float>(i) * 0.5f;
    second[i] = -static_cast<float>(i) - 1.0f;
  }
  Tensor input = Tensor::from_vector(first, {1000}, device);
  Tensor output = Tensor::empty({1000}, DType::kF32, device);
  Tensor doubled;  // made inside the capture, so it lives in the pool
  auto pool = device.allocator().create_pool();
  Graph graph = Graph::capture(
      device,
      [&] {
        doubled = Tensor::empty({2, 1000}, DType::kF32, device);
        doubled.select(0, 0).copy_(input);
        doubled.select(0, 1).copy_(doubled.select(0, 0));
        output.copy_(doubled.select(0, 1));
      },
      pool);
  ASSERT_TRUE(graph.defined());
  input.copy_from_host(second.data(), second.size() * sizeof(float));
  graph.replay();
  EXPECT_EQ(output.to_vector<float>(), second);
  input.copy_from_host(first.data(), first.size() * sizeof(float));
  graph.replay();
  graph.replay();
  EXPECT_EQ(output.to_vector<float>(), first);
  // The buffer the graph writes is the pool's: a buffer made outside does not alias it.
  Tensor outside = Tensor::empty({2, 1000}, DType::kF32, device);
  EXPECT_NE(outside.buffer().handle(), doubled.buffer().handle());
}

TEST_P(GraphTest, SynchronizingInsideACaptureFailsCleanly) {
  const Device& device = GetParam();
  if (!Graph::supported(device)) GTEST_SKIP() << device.spec() << " cannot record graphs";
  Tensor input = Tensor::from_vector(std::vector<int64_t>{1, 2, 3}, {3}, device);
  auto pool = device.allocator().create_pool();
  EXPECT_THROW(Graph::capture(
                   device, [&] { (void)input.to_vector<int64_t>(); }, pool),
               Error);
  // The stream runs work again afterwards.
  EXPECT_EQ(input.clone().to_vector<int64_t>(), (std::vector<int64_t>{1, 2, 3}));
}

TEST_P(GraphTest, DevicesWithoutRecordingRefuse) {
  const Device& device = GetParam();
  if (Graph::supported(device)) GTEST_SKIP() << device.spec() << " records graphs";
  try {
    Graph::capture(
        device, [] {}, device.allocator().create_pool());
    FAIL() << "capture on " << device.spec() << " did not throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kUnsupported);
    EXPECT_NE(std::string(e.what()).find(device.spec()), std::string::npos) << e.what();
  }
  EXPECT_THROW(Graph().replay(), Error);
}

FLAGSTONE_INSTANTIATE_ON_ALL_DEVICES(GraphTest);

}  // namespace
}  // namespace flagstone::runtime
