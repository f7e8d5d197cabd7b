// Times linear with few activation rows on cuda:0 (decode's matrix-vector products): the native
// GEMV against cuBLAS in the same run (and, with --streamed, the decode step's streamed GEMV), as
// GB/s of weight streamed and a fraction of the measured copy bandwidth. Each call reads its own
// copy of the weight from a set larger than L2, and the calls are recorded in a CUDA graph as a
// decode step replays them. A timing tool, not a test.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "cuda/gemv.h"
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
    "usage: ops_cuda_gemv_timing [--dtype bf16|f16|f32] [--rows 1,4,8] [--shapes NxK,...]\n"
    "                            [--sweep] [--streamed] [--quant] [--reps N]\n"
    "  Times linear (y = x W^T, W [N, K]) with few rows on cuda:0: the native GEMV, cuBLAS and\n"
    "  what dispatch picks, each call on its own weight copy (the set exceeds L2), recorded in a\n"
    "  CUDA graph. GB/s counts weight + x + y bytes; %copy is of a device copy measured here\n"
    "  (read + write bytes, 1 GiB).\n"
    "  --rows 0 skips the table (with --quant or --sweep)\n"
    "  --sweep  also every warps-per-row x unroll variant of the native kernel (1 row)\n"
    "  --streamed  also the streamed GEMV (bulk copies) per ring size and blocks per SM (1 row)\n"
    "  --quant  also the native q8_0 / q4_0 GEMV (linear_quantized, 1 row), both kernels\n"
    "  Default shapes: the Llama-3.2-1B and Llama-3-8B decode projections and heads.\n";

struct Dims {
  int64_t n, k;
};

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

std::vector<Dims> parse_shapes(const char* text) {
  std::vector<Dims> out;
  for (const char* p = text; *p;) {
    char* end = nullptr;
    int64_t n = std::strtoll(p, &end, 10);
    if (*end != 'x') break;
    int64_t k = std::strtoll(end + 1, &end, 10);
    out.push_back({n, k});
    p = *end == ',' ? end + 1 : end;
  }
  return out;
}

const Implementation* impl_of(const char* op, Provider provider) {
  for (const Implementation* impl : Registry::global().implementations(op, "cuda"))
    if (impl->provider == provider) return impl;
  return nullptr;
}

// Which cuda implementation dispatch takes for these inputs under the current policy.
std::string picked(const char* op, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
  Policy p = policy();
  for (Provider prov : p.order_for(op))
    for (const Implementation* impl : Registry::global().implementations(op, "cuda")) {
      if (impl->provider != prov || !impl->has_dtype(in[0].dtype())) continue;
      KernelArgs probe{impl->op, in, out, {}, in[0].device()};
      if (!impl->supports || impl->supports(probe).empty()) return impl->name;
    }
  return "none";
}

// Copies of a weight so that consecutive calls never find theirs in L2 (256 MiB in all).
int copies_for(double bytes) {
  return static_cast<int>(std::clamp(256.0 * 1024 * 1024 / bytes, 1.0, 48.0));
}

std::string shape_text(const Dims& d) {
  char text[64];
  std::snprintf(text, sizeof(text), "[%lld, %lld]", static_cast<long long>(d.n),
                static_cast<long long>(d.k));
  return text;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // rows survive a timeout that cuts the run short
  try {
    DType dtype = DType::kBF16;
    std::vector<int64_t> rows{1, 4, 8};
    std::vector<Dims> shapes{{3072, 2048},   {2048, 2048},  {16384, 2048}, {2048, 8192},
                             {128256, 2048}, {6144, 4096},  {4096, 4096},  {28672, 4096},
                             {4096, 14336},  {128256, 4096}};
    bool sweep = false, quant = false, streamed = false;
    int reps = 5;
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      auto next = [&]() -> const char* {
        if (i + 1 >= argc) throw std::runtime_error("an option lacks its value");
        return argv[++i];
      };
      if (a == "--dtype")
        dtype = parse_dtype(next());
      else if (a == "--rows")
        rows = parse_list(next());
      else if (a == "--shapes")
        shapes = parse_shapes(next());
      else if (a == "--reps")
        reps = std::max(1, std::atoi(next()));
      else if (a == "--sweep")
        sweep = true;
      else if (a == "--streamed")
        streamed = true;
      else if (a == "--quant")
        quant = true;
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
    const Implementation* native = impl_of("linear", Provider::kNative);
    const Implementation* vendor = impl_of("linear", Provider::kVendor);
    if (!native || !vendor) throw std::runtime_error("linear lacks a native or vendor cuda impl");
    double copy = copy_gbps(dev);
    std::printf("%s, %s, copy %.1f GB/s (read + write, 1 GiB)\n", dev.info().name.c_str(),
                std::string(dtype_name(dtype)).c_str(), copy);
    std::printf(
        "| weight           | rows |    MiB | native us |   GB/s | %%copy | cuBLAS us | "
        "%%copy | cuBLAS/native | dispatch             |\n");
    std::printf(
        "| ---------------- | ---- | ------ | --------- | ------ | ----- | --------- | "
        "----- | ------------- | -------------------- |\n");
    Policy saved = policy();
    Policy vendor_only = saved;
    vendor_only.op_providers["linear"] = {Provider::kVendor};
    uint64_t seed = 1;
    // --rows 0 skips the linear table (only --quant or --sweep then).
    rows.erase(std::remove_if(rows.begin(), rows.end(), [](int64_t m) { return m < 1; }),
               rows.end());
    for (const Dims& d : shapes) {
      if (rows.empty() && !sweep && !streamed) break;
      double wbytes = static_cast<double>(d.n * d.k * dtype_size(dtype));
      int copies = copies_for(wbytes);
      std::vector<Tensor> ws;
      for (int c = 0; c < copies; ++c) ws.push_back(randn({d.n, d.k}, seed++, 0, dtype, dev));
      int calls = std::max(copies, 8);
      for (int64_t m : rows) {
        Tensor x = randn({m, d.k}, seed++, 0, dtype, dev);
        std::vector<Tensor> out{Tensor::empty({m, d.n}, dtype, dev)};
        double bytes = wbytes + static_cast<double>((m * d.k + m * d.n) * dtype_size(dtype));
        auto time = [&](const Implementation& impl) {
          return graph_us(dev, calls, reps, [&](int i) {
            call_implementation(impl, {x, ws[static_cast<size_t>(i % copies)]}, {}, out);
          });
        };
        std::string pick = picked("linear", {x, ws[0]}, out);
        double t_native = time(*native);
        set_policy(vendor_only);
        double t_vendor = time(*vendor);
        set_policy(saved);
        auto gbps = [&](double us) { return bytes / (us * 1e3); };
        std::printf(
            "| %-16s | %4lld | %6.1f | %9.2f | %6.0f | %4.0f%% | %9.2f | %4.0f%% | %12.2fx | %-20s "
            "|\n",
            shape_text(d).c_str(), static_cast<long long>(m), wbytes / (1 << 20), t_native,
            gbps(t_native), 100 * gbps(t_native) / copy, t_vendor, 100 * gbps(t_vendor) / copy,
            t_vendor / t_native, pick.c_str());
      }
      if (sweep || streamed) {
        Tensor x = randn({1, d.k}, seed++, 0, dtype, dev);
        Tensor out = Tensor::empty({1, d.n}, dtype, dev);
        auto ptr = [](const Tensor& t) {
          return static_cast<char*>(t.buffer().handle()) + t.byte_offset();
        };
        auto stream =
            static_cast<cudaStream_t>(runtime::Stream::default_stream(dev).impl().native_handle());
        if (sweep) {
          std::printf("  sweep %s (1 row, us):", shape_text(d).c_str());
          for (int wpr : {1, 2, 4, 8})
            for (int unroll : {4, 8}) {
              double us = graph_us(dev, calls, reps, [&](int i) {
                cuda::GemvArgs a;
                a.out = ptr(out), a.x = ptr(x), a.w = ptr(ws[static_cast<size_t>(i % copies)]);
                a.m = 1, a.n = d.n, a.k = d.k, a.ldx = d.k, a.ldw = d.k, a.ldo = d.n;
                a.warps_per_row = wpr, a.unroll = unroll;
                if (cuda::launch_gemv(dtype, a, stream) != cudaSuccess)
                  throw std::runtime_error("launch_gemv failed");
              });
              std::printf(" w%d/u%d %.2f", wpr, unroll, us);
            }
          std::printf("\n");
        }
        if (streamed) {
          cuda::FusedGemvArgs a;
          a.out = ptr(out), a.x = ptr(x), a.w = ptr(ws[0]);
          a.m = 1, a.n = d.n, a.k = d.k, a.ldx = d.k, a.ldw = d.k, a.ldo = d.n;
          if (const char* why = cuda::streamed_gemv_refusal(dtype, a); *why) {
            std::printf("  streamed %s: refused (%s)\n", shape_text(d).c_str(), why);
            continue;
          }
          std::printf("  streamed %s (1 row, us; ring KiB/blocks per SM/chunk KiB asked):\n   ",
                      shape_text(d).c_str());
          for (int bpsm : {1, 2})
            for (int slots : {8, 16})
              for (int chunk : {4, 8, 16}) {
                const int kib = slots * chunk;
                if (kib * bpsm > 200) continue;
                double us = graph_us(dev, calls, reps, [&](int i) {
                  a.w = ptr(ws[static_cast<size_t>(i % copies)]);
                  if (cuda::launch_streamed_gemv(dtype, a, stream, {kib, bpsm, chunk}) !=
                      cudaSuccess)
                    throw std::runtime_error("launch_streamed_gemv failed");
                });
                std::printf(" %d/%d/%d %.2f (%.0f%%)", kib, bpsm, chunk, us,
                            100 * wbytes / (us * 1e3) / copy);
              }
          std::printf("\n");
        }
      }
    }
    if (quant) {
      const Implementation* q = impl_of("linear_quantized", Provider::kNative);
      if (!q) throw std::runtime_error("no native cuda linear_quantized");
      std::printf(
          "\nlinear_quantized, native cuda, 1 row of %s: both GEMV kernels "
          "(FLAGSTONE_QUANT_GEMV=warp | staged)\n",
          std::string(dtype_name(dtype)).c_str());
      std::printf(
          "| weight           | format |    MiB | warp us | %%copy | staged us | %%copy |\n");
      std::printf("| ---------------- | ------ | ------ | ------- | ----- | --------- | ----- |\n");
      for (const Dims& d : shapes) {
        if (d.n * d.k > (int64_t{1} << 28) || d.k % 32 != 0) continue;  // skip the heads
        for (DType qt : {DType::kQ8_0, DType::kQ4_0}) {
          Tensor w0 = random_quant(qt, d.n, d.k, seed++, dev);
          double wbytes = static_cast<double>(w0.nbytes());
          int copies = copies_for(wbytes);
          std::vector<Tensor> ws{w0};
          for (int c = 1; c < copies; ++c) ws.push_back(w0.clone());
          Tensor x = randn({1, d.k}, seed++, 0, dtype, dev);
          std::vector<Tensor> out{Tensor::empty({1, d.n}, dtype, dev)};
          double us[2];
          for (int v = 0; v < 2; ++v) {
            setenv("FLAGSTONE_QUANT_GEMV", v == 0 ? "warp" : "staged", 1);
            us[v] = graph_us(dev, std::max(copies, 8), reps, [&](int i) {
              call_implementation(*q, {x, ws[static_cast<size_t>(i % copies)]}, {}, out);
            });
          }
          unsetenv("FLAGSTONE_QUANT_GEMV");
          auto pct = [&](double t) { return 100 * wbytes / (t * 1e3) / copy; };
          std::printf("| %-16s | %-6s | %6.1f | %7.2f | %4.0f%% | %9.2f | %4.0f%% |\n",
                      shape_text(d).c_str(), std::string(dtype_name(qt)).c_str(),
                      wbytes / (1 << 20), us[0], pct(us[0]), us[1], pct(us[1]));
        }
      }
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ops_cuda_gemv_timing: %s\n", e.what());
    return 1;
  }
}
