// CUDA-graph safety of the cuda provider: a decoder layer's worth of ops (rms_norm, linear,
// rotary, decode attention over a KV cache, silu_and_mul, add) captured on the device's stream in
// global capture mode (any allocation or host synchronization inside would break the capture),
// replayed on new input data, and compared with eager calls on that data.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include "ops/ops_test_util.h"

namespace flagstone::ops::testing {
namespace {

constexpr int64_t kHidden = 256, kHeads = 4, kKvHeads = 2, kHeadDim = 64, kFfn = 384;
constexpr int64_t kCache = 40, kPos = 23;  // keys 0..kPos are valid in the cache

struct Layer {
  Tensor x, norm_w, wq, bq, wo, norm2_w, wgu, wdown, k_cache, v_cache, positions, cos, sin;
};

// Outputs preallocated once so eager and captured runs write the same buffers.
struct Buffers {
  Tensor h, q, q_rot, attn, o, resid, h2, gu, act, down, out;
};

Buffers make_buffers(DType d, const Device& dev) {
  auto e = [&](const Shape& s) { return Tensor::empty(s, d, dev); };
  return {e({1, kHidden}),
          e({1, kHeads * kHeadDim}),
          e({1, kHeads, kHeadDim}),
          e({1, kHeads, 1, kHeadDim}),
          e({1, kHidden}),
          e({1, kHidden}),
          e({1, kHidden}),
          e({1, 2 * kFfn}),
          e({1, kFfn}),
          e({1, kHidden}),
          e({1, kHidden})};
}

// One decode step: the new token's K/V are taken as already in the cache at kPos, so the step
// is all dispatched ops on fixed, contiguous buffers (nothing for dispatch to copy).
void step(const Layer& l, Buffers& b) {
  std::vector<Tensor> o1{b.h};
  call_out("rms_norm", {l.x, l.norm_w}, {{"eps", 1e-6}}, o1);
  std::vector<Tensor> o2{b.q};
  call_out("linear", {b.h, l.wq, l.bq}, {}, o2);
  std::vector<Tensor> o3{b.q_rot};
  call_out("rotary_embedding", {b.q.view({1, kHeads, kHeadDim}), l.positions, l.cos, l.sin},
           {{"style", "neox"}}, o3);
  Tensor qa = b.q_rot.view({1, kHeads, 1, kHeadDim});
  std::vector<Tensor> o4{b.attn};
  call_out("scaled_dot_product_attention",
           {qa, l.k_cache.narrow(2, 0, kPos + 1), l.v_cache.narrow(2, 0, kPos + 1)}, {}, o4);
  std::vector<Tensor> o5{b.o};
  call_out("linear", {b.attn.view({1, kHeads * kHeadDim}), l.wo}, {}, o5);
  std::vector<Tensor> o6{b.resid};
  call_out("add", {l.x, b.o}, {}, o6);
  std::vector<Tensor> o7{b.h2};
  call_out("rms_norm", {b.resid, l.norm2_w}, {{"eps", 1e-6}}, o7);
  std::vector<Tensor> o8{b.gu};
  call_out("linear", {b.h2, l.wgu}, {}, o8);
  std::vector<Tensor> o9{b.act};
  call_out("silu_and_mul", {b.gu}, {}, o9);
  std::vector<Tensor> o10{b.down};
  call_out("linear", {b.act, l.wdown}, {}, o10);
  std::vector<Tensor> o11{b.out};
  call_out("add", {b.resid, b.down}, {}, o11);
}

TEST(CudaGraph, DecoderLayerCapturesAndReplays) {
  auto devices = runtime::devices_of("cuda");
  if (devices.empty()) GTEST_SKIP() << "no CUDA device";
  uint64_t seed = test_seed();
  std::printf("cuda graph: seed %llu\n", static_cast<unsigned long long>(seed));
  for (const Device& dev : devices) {
    for (DType d : {DType::kBF16, DType::kF32}) {
      SCOPED_TRACE(dev.spec() + " " + std::string(dtype_name(d)));
      Rng rng(seed);
      auto rt = [&](const Shape& s, double scale) {
        return random_tensor(rng, s, d, dev, -scale, scale);
      };
      Layer l;
      l.x = rt({1, kHidden}, 1);
      l.norm_w = rt({kHidden}, 1);
      l.wq = rt({kHeads * kHeadDim, kHidden}, 0.1);
      l.bq = rt({kHeads * kHeadDim}, 0.1);
      l.wo = rt({kHidden, kHeads * kHeadDim}, 0.1);
      l.norm2_w = rt({kHidden}, 1);
      l.wgu = rt({2 * kFfn, kHidden}, 0.1);
      l.wdown = rt({kHidden, kFfn}, 0.1);
      l.k_cache = rt({1, kKvHeads, kCache, kHeadDim}, 1);
      l.v_cache = rt({1, kKvHeads, kCache, kHeadDim}, 1);
      l.positions = make_tensor({static_cast<double>(kPos)}, {1}, DType::kI64, dev);
      auto tables = call("rope_cache", {},
                         {{"max_positions", 64}, {"rotary_dim", kHeadDim}, {"device", dev.spec()}});
      l.cos = tables[0], l.sin = tables[1];
      Buffers b = make_buffers(d, dev);
      step(l, b);  // warm up: cuBLAS handle, workspace, caching-allocator blocks
      dev.synchronize();

      auto stream = static_cast<cudaStream_t>(dev.impl().default_stream().native_handle());
      ASSERT_EQ(cudaSetDevice(dev.index()), cudaSuccess);
      ASSERT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal), cudaSuccess);
      bool captured_ok = true;
      try {
        step(l, b);
      } catch (const Error& e) {
        captured_ok = false;
        ADD_FAILURE() << "an op failed during capture: " << e.what();
      }
      cudaGraph_t graph = nullptr;
      cudaError_t end = cudaStreamEndCapture(stream, &graph);
      ASSERT_TRUE(captured_ok);
      ASSERT_EQ(end, cudaSuccess) << "capture was invalidated: " << cudaGetErrorString(end)
                                  << " (an op allocated or synchronized inside it)";
      cudaGraphExec_t exec = nullptr;
      ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);

      // New data in the captured input buffers, then replay against eager on the same data.
      Tensor x2 = random_tensor(rng, {1, kHidden}, d, Device(), -1, 1);
      l.x.copy_(x2);
      dev.synchronize();
      ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
      ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
      Tensor replayed = b.out.to(Device());
      Tensor replayed_resid = b.resid.to(Device());
      poison(b.out);
      step(l, b);
      Tensor eager = b.out.to(Device());
      EXPECT_EQ(compare(replayed, eager, {0, 0}), "");
      EXPECT_EQ(compare(replayed_resid, b.resid.to(Device()), {0, 0}), "");
      cudaGraphExecDestroy(exec);
      cudaGraphDestroy(graph);
    }
  }
}

}  // namespace
}  // namespace flagstone::ops::testing
