// Times causal attention prefill (bf16, 32 heads of 128, `tokens` from argv) through dispatch on
// cuda:0 with device events, for tools/gpu/opscuda_attention.py to set beside PyTorch's SDPA.
// A timing tool, not a test: it asserts nothing about speed.
#include <cstdio>
#include <cstdlib>

#include "ops/ops_test_util.h"

int main(int argc, char** argv) {
  using namespace flagstone;
  using namespace flagstone::ops;
  try {
    auto devices = runtime::devices_of("cuda");
    if (devices.empty()) {
      std::printf("no CUDA device\n");
      return 0;
    }
    const Device& dev = devices[0];
    int64_t tokens = argc > 1 ? std::atoll(argv[1]) : 8192, heads = 32, dim = 128;
    testing::Rng rng(1);
    Shape s{1, heads, tokens, dim};
    Tensor q = testing::random_tensor(rng, s, DType::kBF16, dev, -1, 1);
    Tensor k = testing::random_tensor(rng, s, DType::kBF16, dev, -1, 1);
    Tensor v = testing::random_tensor(rng, s, DType::kBF16, dev, -1, 1);
    AttentionOptions opt;
    opt.causal = true;
    for (int i = 0; i < 2; ++i) scaled_dot_product_attention(q, k, v, {}, opt);
    Stream stream = Stream::default_stream(dev);
    runtime::Event start(dev), end(dev);
    int reps = 5;
    start.record(stream);
    for (int i = 0; i < reps; ++i) scaled_dot_product_attention(q, k, v, {}, opt);
    end.record(stream);
    end.synchronize();
    double ms = start.elapsed_ms(end) / reps;
    double flops = 4.0 * heads * tokens * tokens * dim / 2;
    std::printf("flagstone sdpa causal bf16 tokens=%lld: %.3f ms, %.1f TFLOP/s (%s)\n",
                static_cast<long long>(tokens), ms, flops / ms / 1e9,
                select("scaled_dot_product_attention", dev, DType::kBF16).impl->name.c_str());
  } catch (const Error& e) {
    std::printf("error: %s\n", e.what());
    return 1;
  }
  return 0;
}
