// Times attention on cuda:0 with device events, for tools/gpu/opscuda_attention.py to set beside
// PyTorch's SDPA: causal prefill (bf16, 32 heads of 128, argv[1] tokens) or, with argv[2] =
// "decode", one query per head over argv[1] cached keys (8 kv heads). Each cuda implementation
// of scaled_dot_product_attention is timed on its own (a refusal prints its reason), then the
// one dispatch picks. A timing tool, not a test: it asserts nothing about speed.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>

#include "ops/ops_test_util.h"

namespace {

using namespace flagstone;
using namespace flagstone::ops;

double time_ms(const Device& dev, int reps, const std::function<void()>& fn) {
  for (int i = 0; i < 2; ++i) fn();
  Stream stream = Stream::default_stream(dev);
  runtime::Event start(dev), end(dev);
  start.record(stream);
  for (int i = 0; i < reps; ++i) fn();
  end.record(stream);
  end.synchronize();
  return start.elapsed_ms(end) / reps;
}

}  // namespace

int main(int argc, char** argv) {
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
    Attrs attrs;
    attrs.set("causal", opt.causal);
    int reps = decode ? 50 : 5;
    auto report = [&](const std::string& who, double ms) {
      if (decode) {
        double bytes = 2.0 * kv_heads * tokens * dim * 2;
        std::printf("flagstone %s decode bf16 keys=%lld: %.3f ms, %.0f GB/s of K/V\n", who.c_str(),
                    static_cast<long long>(tokens), ms, bytes / ms / 1e6);
      } else {
        double flops = 4.0 * heads * tokens * tokens * dim / 2;
        std::printf("flagstone %s causal bf16 tokens=%lld: %.3f ms, %.1f TFLOP/s\n", who.c_str(),
                    static_cast<long long>(tokens), ms, flops / ms / 1e9);
      }
      std::fflush(stdout);
    };
    for (const Implementation* impl :
         Registry::global().implementations("scaled_dot_product_attention", "cuda")) {
      std::vector<Tensor> out;
      try {
        // The first call of a shape includes building its plan (cuDNN) on the host.
        auto t0 = std::chrono::steady_clock::now();
        call_implementation(*impl, {q, k, v}, attrs, out);
        dev.synchronize();
        double first_ms =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                .count();
        std::printf("flagstone %s: first call (plan build included) %.1f ms\n", impl->name.c_str(),
                    first_ms);
        report(impl->name, time_ms(dev, reps, [&] {
                 call_implementation(*impl, {q, k, v}, attrs, out);
               }));
      } catch (const Error& e) {
        std::printf("flagstone %s: refused or failed: %s\n", impl->name.c_str(), e.what());
      }
    }
    // A second shape (64 fewer tokens): what a new prompt length costs on its first call.
    if (!decode && tokens > 64) {
      Tensor q2 = q.narrow(2, 0, tokens - 64), k2 = k.narrow(2, 0, tokens - 64),
             v2 = v.narrow(2, 0, tokens - 64);
      for (const Implementation* impl :
           Registry::global().implementations("scaled_dot_product_attention", "cuda")) {
        std::vector<Tensor> out;
        try {
          auto t0 = std::chrono::steady_clock::now();
          call_implementation(*impl, {q2, k2, v2}, attrs, out);
          dev.synchronize();
          double ms =
              std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                  .count();
          std::printf("flagstone %s: first call of a new length (%lld) %.1f ms\n",
                      impl->name.c_str(), static_cast<long long>(tokens - 64), ms);
        } catch (const Error& e) {
          std::printf("flagstone %s: new length refused: %s\n", impl->name.c_str(), e.what());
        }
      }
    }
    report(
        "dispatch (" + select("scaled_dot_product_attention", dev, DType::kBF16).impl->name + ")",
        time_ms(dev, reps, [&] { scaled_dot_product_attention(q, k, v, {}, opt); }));
  } catch (const Error& e) {
    std::printf("error: %s\n", e.what());
    return 1;
  }
  return 0;
}
