// Times the native cuda GEMV of GGUF q8_0 / q4_0 weights (linear_quantized, decode's 1-row
// matrix-vector product) in each kernel variant on cuda:0, as microseconds per call, GB/s of
// quantized weight read and a fraction of the device copy bandwidth measured in the same run.
// Each call reads its own weight copy (the set exceeds L2), recorded in a CUDA graph as a decode
// step replays it. A timing tool, not a test.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "flagstone/base/half.h"
#include "flagstone/runtime/graph.h"
#include "graph_timing.h"
#include "ops/ops_test_util.h"

namespace {

using namespace flagstone;
using namespace flagstone::ops;
using flagstone::ops::test::copy_gbps;
using flagstone::ops::test::graph_us;
using flagstone::ops::test::random_quant;

constexpr const char* kUsage =
    "usage: ops_cuda_quant_timing [--dtype bf16|f16|f32] [--rows N] [--shapes NxK,...]\n"
    "                             [--variants vec,staged,warp,vec/w1,...] [--reps N]\n"
    "  Times linear_quantized (y = x W^T, W [N, K] in q8_0 and q4_0) with N rows of x on cuda:0\n"
    "  in each GEMV kernel (FLAGSTONE_QUANT_GEMV; vec/wK also forces K warps per output row).\n"
    "  GB/s counts the quantized weight bytes; %copy is of a device copy measured here (read +\n"
    "  write bytes, 1 GiB). Default shapes: Llama-3-8B's decode projections and head, and two of\n"
    "  Llama-3.2-1B's.\n";

struct Dims {
  int64_t n, k;
};

std::vector<Dims> parse_shapes(const std::string& text) {
  std::vector<Dims> out;
  for (const char* p = text.c_str(); *p;) {
    char* end = nullptr;
    int64_t n = std::strtoll(p, &end, 10);
    if (*end != 'x') throw std::runtime_error("--shapes wants NxK,...; got '" + text + "'");
    int64_t k = std::strtoll(end + 1, &end, 10);
    out.push_back({n, k});
    p = *end == ',' ? end + 1 : end;
  }
  return out;
}

std::vector<std::string> parse_names(const std::string& text) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find(',', pos);
    if (end == std::string::npos) end = text.size();
    if (end > pos) out.push_back(text.substr(pos, end - pos));
    pos = end + 1;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // rows survive a timeout that cuts the run short
  try {
    DType dtype = DType::kBF16;
    int64_t rows = 1;
    int reps = 5;
    std::vector<Dims> shapes{{4096, 4096},   {14336, 4096}, {4096, 14336},
                             {128256, 4096}, {2048, 2048},  {8192, 2048}};
    std::vector<std::string> variants{"warp", "staged", "vec"};
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      auto next = [&]() -> std::string {
        if (i + 1 >= argc) throw std::runtime_error(a + " lacks its value");
        return argv[++i];
      };
      if (a == "--dtype")
        dtype = parse_dtype(next());
      else if (a == "--rows")
        rows = std::clamp<int64_t>(std::atoll(next().c_str()), 1, 16);
      else if (a == "--shapes")
        shapes = parse_shapes(next());
      else if (a == "--variants")
        variants = parse_names(next());
      else if (a == "--reps")
        reps = std::max(1, std::atoi(next().c_str()));
      else {
        std::fputs(kUsage, a == "--help" || a == "-h" ? stdout : stderr);
        return a == "--help" || a == "-h" ? 0 : 2;
      }
    }
    auto devices = runtime::devices_of("cuda");
    if (devices.empty()) {
      std::printf("no CUDA device\n");
      return 0;
    }
    const Device& dev = devices[0];
    const Implementation* q = nullptr;
    for (const Implementation* impl :
         Registry::global().implementations("linear_quantized", "cuda"))
      if (impl->provider == Provider::kNative) q = impl;
    if (!q) throw std::runtime_error("no native cuda linear_quantized");
    double copy = copy_gbps(dev);
    std::printf("%s, x %s, %lld row(s), copy %.1f GB/s (read + write, 1 GiB)\n",
                dev.info().name.c_str(), std::string(dtype_name(dtype)).c_str(),
                static_cast<long long>(rows), copy);
    std::printf("| weight           | format |    MiB | variant    |    us |   GB/s | %%copy |\n");
    std::printf("| ---------------- | ------ | ------ | ---------- | ----- | ------ | ----- |\n");
    uint64_t seed = 1;
    for (const Dims& d : shapes) {
      for (DType qt : {DType::kQ8_0, DType::kQ4_0}) {
        Tensor w0 = random_quant(qt, d.n, d.k, seed++, dev);
        double wbytes = static_cast<double>(w0.nbytes());
        int copies = static_cast<int>(std::clamp(256.0 * 1024 * 1024 / wbytes, 1.0, 48.0));
        std::vector<Tensor> ws{w0};
        for (int c = 1; c < copies; ++c) ws.push_back(w0.clone());
        Tensor x = randn({rows, d.k}, seed++, 0, dtype, dev);
        std::vector<Tensor> out{Tensor::empty({rows, d.n}, dtype, dev)};
        for (const std::string& v : variants) {
          size_t slash = v.find("/w");
          setenv("FLAGSTONE_QUANT_GEMV", v.substr(0, slash).c_str(), 1);
          if (slash != std::string::npos)
            setenv("FLAGSTONE_QUANT_VEC_WPR", v.substr(slash + 2).c_str(), 1);
          double us = graph_us(dev, std::max(copies, 8), reps, [&](int i) {
            call_implementation(*q, {x, ws[static_cast<size_t>(i % copies)]}, {}, out);
          });
          unsetenv("FLAGSTONE_QUANT_GEMV");
          unsetenv("FLAGSTONE_QUANT_VEC_WPR");
          double gbps = wbytes / (us * 1e3);
          char shape[64];
          std::snprintf(shape, sizeof(shape), "[%lld, %lld]", static_cast<long long>(d.n),
                        static_cast<long long>(d.k));
          std::printf("| %-16s | %-6s | %6.1f | %-10s | %5.1f | %6.0f | %4.0f%% |\n", shape,
                      std::string(dtype_name(qt)).c_str(), wbytes / (1 << 20), v.c_str(), us, gbps,
                      100 * gbps / copy);
        }
      }
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ops_cuda_quant_timing: %s\n", e.what());
    return 1;
  }
}
