// Times decode attention on cuda:0 in isolation: calls recorded in a CUDA graph and replayed, so a
// call costs what it costs inside a recorded decode step (kernel plus the gap to the next, no
// host dispatch). A timing tool, not a test: it asserts nothing about speed.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "cuda/kernels.h"
#include "flagstone/runtime/graph.h"
#include "graph_timing.h"
#include "ops/ops_test_util.h"

namespace {

using namespace flagstone;
using namespace flagstone::ops;

constexpr const char* kUsage =
    "usage: ops_cuda_decode_attention_timing [--lengths 1,64,...] [--dims 64,128] [--splits 8,16]\n"
    "  One query per head (32 query heads, 8 kv heads: the Llama-3.2-1B shape with --dims 64,\n"
    "  Llama-3-8B with 128), bf16, over N cached keys in the engine's cache layout ([1, capacity,\n"
    "  8, d], capacity max(N, 640)). Prints microseconds per call of paged_attention as the\n"
    "  engine calls it (the op's split plan), each call on its own cache copy while the copies\n"
    "  exceed L2; with --splits also the kernel at those forced split counts.\n";

void* address_of(const Tensor& t) {
  return static_cast<char*>(t.buffer().handle()) + t.byte_offset();
}

std::vector<int64_t> parse_list(const char* text) {
  std::vector<int64_t> out;
  for (const char* p = text; *p;) {
    char* end = nullptr;
    out.push_back(std::strtoll(p, &end, 10));
    if (end == p) break;
    p = *end == ',' ? end + 1 : end;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int64_t> lengths{1, 64, 128, 640, 4096, 32768}, dims{64, 128};
  std::vector<int64_t> forced;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--lengths" && i + 1 < argc) {
      lengths = parse_list(argv[++i]);
    } else if (arg == "--dims" && i + 1 < argc) {
      dims = parse_list(argv[++i]);
    } else if (arg == "--splits" && i + 1 < argc) {
      forced = parse_list(argv[++i]);
    } else {
      std::printf("%s", kUsage);
      return arg == "--help" ? 0 : 2;
    }
  }
  try {
    auto devices = runtime::devices_of("cuda");
    if (devices.empty()) {
      std::printf("no CUDA device\n");
      return 0;
    }
    const Device& dev = devices[0];
    const int64_t hq = 32, hk = 8;
    testing::Rng rng(7);
    // Split workspace and tickets for the forced-split runs (the op keeps its own).
    const int64_t max_splits = 128;
    runtime::Buffer scratch =
        runtime::Buffer::allocate(dev, size_t{hq} * max_splits * (128 + 4) * 4 + 4096);
    runtime::Stream stream = runtime::Stream::default_stream(dev);
    runtime::fill_bytes(stream, scratch, 0, scratch.size(), 0);
    std::printf("%-6s %-6s %-6s %10s %9s", "dim", "keys", "splits", "op us", "GB/s");
    if (!forced.empty()) std::printf("   forced splits: us per call");
    std::printf("\n");
    for (int64_t d : dims) {
      for (int64_t n : lengths) {
        const int64_t capacity = std::max<int64_t>(n, 640);
        const double bytes = 2.0 * hk * static_cast<double>(n) * d * 2;
        const double cache_bytes = 2.0 * hk * static_cast<double>(capacity) * d * 2;
        const int copies =
            static_cast<int>(std::clamp<double>(std::ceil(96e6 / cache_bytes), 1, 16));
        std::vector<Tensor> kc, vc;
        for (int c = 0; c < copies; ++c) {
          kc.push_back(testing::random_tensor(rng, {1, capacity, hk, d}, DType::kBF16, dev, -1, 1));
          vc.push_back(testing::random_tensor(rng, {1, capacity, hk, d}, DType::kBF16, dev, -1, 1));
        }
        Tensor q = testing::random_tensor(rng, {1, hq, d}, DType::kBF16, dev, -1, 1);
        Tensor bt = testing::make_tensor({0}, {1, 1}, DType::kI64, dev);
        Tensor lens = testing::make_tensor({static_cast<double>(n)}, {1}, DType::kI64, dev);
        std::vector<Tensor> out{Tensor::empty({1, hq, d}, DType::kBF16, dev)};
        const int calls = std::max(copies, 16);
        double op_us = test::graph_us(dev, calls, 9, [&](int i) {
          call_out("paged_attention", {q, kc[i % copies], vc[i % copies], bt, lens}, {}, out);
        });
        std::printf("%-6lld %-6lld %-6s %10.2f %9.0f", static_cast<long long>(d),
                    static_cast<long long>(n), "plan", op_us, bytes / op_us / 1e3);
        for (int64_t splits : forced) {
          if (splits < 1 || splits > max_splits) continue;
          cuda::AttentionArgs a;
          a.out = address_of(out[0]);
          a.q = address_of(q);
          a.batch = 1, a.q_heads = hq, a.kv_heads = hk, a.q_len = 1, a.head_dim = d;
          a.v_dim = d;
          a.q_stride[0] = hq * d, a.q_stride[1] = d, a.q_stride[3] = 1;
          a.o_stride[0] = hq * d, a.o_stride[1] = d, a.o_stride[3] = 1;
          for (int k = 0; k < 4; ++k) a.k_stride[k] = kc[0].stride(k);
          a.scale = 0.125f;
          a.block_table = address_of(bt), a.table_i64 = true;
          a.seq_lens = address_of(lens), a.lens_i64 = true;
          a.block_size = capacity, a.max_blocks = 1, a.num_blocks = 1;
          a.splits = static_cast<int>(splits);
          a.partials = static_cast<float*>(scratch.handle());
          a.counters = reinterpret_cast<unsigned*>(static_cast<char*>(scratch.handle()) +
                                                   scratch.size() - 4096);
          auto native = static_cast<cudaStream_t>(dev.impl().default_stream().native_handle());
          double us = test::graph_us(dev, calls, 9, [&](int i) {
            a.k = address_of(kc[i % copies]), a.v = address_of(vc[i % copies]);
            cudaError_t e = cuda::launch_decode_attention(DType::kBF16, a, native);
            if (e != cudaSuccess) throw_error(ErrorCategory::kBackend, cudaGetErrorString(e));
          });
          std::printf("  %lld:%.2f", static_cast<long long>(splits), us);
        }
        std::printf("\n");
        std::fflush(stdout);
      }
    }
  } catch (const Error& e) {
    std::printf("error: %s\n", e.what());
    return 1;
  }
  return 0;
}
