// Shared parts of `flagstone bench compiler`: its options, the config sweep and the helpers of
// the three measurements (memory-bound kernels, the GEMM, launch times), one file each.
#pragma once

#include <cmath>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "bench_timing.h"
#include "flagstone/base/error.h"
#include "flagstone/compiler/kernel.h"
#include "flagstone/runtime/device.h"

namespace flagstone::cli::bench_compiler {

using compiler::Config;
using runtime::Device;
using runtime::Stream;

struct Options {
  std::vector<std::string> devices;
  double size_mib = 0;  // 0: 256 on GPUs, 16 elsewhere
  int64_t gemm = 0;     // 0: 4096 on GPUs, 256 elsewhere
  int repeat = 10;
  bool json = false;
  bool probe = false;  // internal: one cached-launch measurement in this fresh process
  std::vector<std::string> gemm_configs;  // replaces the GEMM candidates when given
  bool gemm_only = false;
  bool gemm_b_t = false;      // B stored [N, K]: C = A @ B.T
  bool row_variants = false;  // also time every written variant of the row kernels
};

// Copy, add, softmax and rms_norm against the device copy measured in the same run.
nlohmann::json bench_memory(const Device& device, const Options& o);
// The bf16 GEMM sweep, each candidate checked against float64, vs cuBLAS on cuda devices.
nlohmann::json bench_gemm(const Device& device, const Options& o);
// The row softmax of a contiguous [rows, n] f32 matrix (meta N >= n): also the kernel of the
// launch-time probe, as a typical fused kernel.
void build_softmax(compiler::KernelBuilder& k);
// "BM=128,BN=256,BK=64,num_warps=8" -> Config; GROUP_M defaults to 8.
Config parse_gemm_config(const std::string& text);

bool is_gpu(const Device& d);
std::vector<float> random_floats(size_t n, uint32_t seed);
double max_rel_error(const std::vector<float>& got, const std::vector<double>& want);

// Times every config with `launch` and keeps the fastest (the result is the best config's);
// `all`, when given, receives each config's time (null: the config does not fit the device).
template <typename LaunchFn>
std::pair<double, Config> best_config(const Device& device, const Stream& stream, int repeat,
                                      const std::vector<Config>& configs, LaunchFn&& launch,
                                      nlohmann::json* all = nullptr) {
  double best = INFINITY;
  Config chosen;
  for (const Config& c : configs) {
    double ms = INFINITY;
    try {
      ms = median_ms(device, stream, repeat, [&] { launch(c); });
    } catch (const Error& e) {
      if (e.category() != ErrorCategory::kUnsupported) throw;  // too big for this device
    }
    if (all)
      all->push_back(
          {{"config", c.str()}, {"ms", std::isfinite(ms) ? nlohmann::json(ms) : nlohmann::json()}});
    if (ms < best) best = ms, chosen = c;
  }
  FS_CHECK(std::isfinite(best), kUnsupported, "bench compiler: no config runs on ", device.spec());
  return {best, chosen};
}

}  // namespace flagstone::cli::bench_compiler
