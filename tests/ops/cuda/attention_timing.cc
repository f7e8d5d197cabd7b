// Times attention through dispatch on cuda:0 with device events, for
// tools/gpu/opscuda_attention.py to set beside PyTorch's SDPA: causal prefill (bf16, 32 heads of
// 128, argv[1] tokens) or, with argv[2] = "decode", one query per head over argv[1] cached keys
// (8 kv heads). A timing tool, not a test: it asserts nothing about speed.
#include <cstdio>
#include <cstdlib>
#include <string>

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
    bool decode = argc > 2 && std::string(argv[2]) == "decode";
    int64_t kv_heads = decode ? 8 : heads;
    testing::Rng rng(1);
    Tensor q =
        testing::random_tensor(rng, {1, heads, decode ? 1 : tokens, dim}, DType::kBF16, dev, -1, 1);
    Tensor k = testing::random_tensor(rng, {1, kv_heads, tokens, dim}, DType::kBF16, dev, -1, 1);
    Tensor v = testing::random_tensor(rng, {1, kv_heads, tokens, dim}, DType::kBF16, dev, -1, 1);
    AttentionOptions opt;
    opt.causal = !decode;
    for (int i = 0; i < 2; ++i) scaled_dot_product_attention(q, k, v, {}, opt);
    Stream stream = Stream::default_stream(dev);
    runtime::Event start(dev), end(dev);
    int reps = decode ? 50 : 5;
    start.record(stream);
    for (int i = 0; i < reps; ++i) scaled_dot_product_attention(q, k, v, {}, opt);
    end.record(stream);
    end.synchronize();
    double ms = start.elapsed_ms(end) / reps;
    if (decode) {
      double bytes = 2.0 * kv_heads * tokens * dim * 2;
      std::printf("flagstone sdpa decode bf16 keys=%lld: %.3f ms, %.0f GB/s of K/V\n",
                  static_cast<long long>(tokens), ms, bytes / ms / 1e6);
    } else {
      double flops = 4.0 * heads * tokens * tokens * dim / 2;
      std::printf("flagstone sdpa causal bf16 tokens=%lld: %.3f ms, %.1f TFLOP/s (%s)\n",
                  static_cast<long long>(tokens), ms, flops / ms / 1e9,
                  select("scaled_dot_product_attention", dev, DType::kBF16).impl->name.c_str());
    }
  } catch (const Error& e) {
    std::printf("error: %s\n", e.what());
    return 1;
  }
  return 0;
}
