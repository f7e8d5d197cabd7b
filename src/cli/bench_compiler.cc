// `flagstone bench compiler`: generated kernels against the device's own limits and vendor
// peers measured in the same run: memory-bound kernels vs device copy bandwidth
// (bench_compiler_memory.cc), a bf16 GEMM vs cuBLAS (bench_compiler_gemm.cc), first-compile
// time and the launch time of an already-cached kernel in a new process (here).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <random>

#include "bench_compiler.h"
#include "commands.h"
#include "flagstone/runtime/tensor.h"

namespace flagstone::cli {
namespace bench_compiler {

std::vector<float> random_floats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

double max_rel_error(const std::vector<float>& got, const std::vector<double>& want) {
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i)
    worst = std::max(worst, std::abs(got[i] - want[i]) / std::max(1e-6, std::abs(want[i])));
  return worst;
}

bool is_gpu(const Device& d) {
  return d.info().type == runtime::DeviceType::kGpu;
}

}  // namespace bench_compiler

namespace {

using bench_compiler::Options;
using compiler::Config;
using compiler::Grid;
using compiler::Kernel;
using runtime::Device;
using runtime::Stream;

// The probe kernel: the row softmax, a typical fused kernel.
const Kernel& probe_kernel() {
  static Kernel k("bench_probe_softmax", bench_compiler::build_softmax,
                  {Config{{"N", 1024}, {"num_warps", 4}}});
  return k;
}

double now_ms() {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// In a fresh process: device set-up, then one launch of the probe kernel through the caches.
void run_probe(const Options& o) {
  double t0 = now_ms();
  Device device = Device::get(o.devices.empty() ? "cpu" : o.devices[0]);
  Stream stream = Stream::default_stream(device);
  Tensor x = Tensor::from_vector(bench_compiler::random_floats(4 * 1024, 7), {4 * 1024}, device);
  Tensor y = Tensor::empty({4 * 1024}, DType::kF32, device);
  stream.synchronize();
  double t1 = now_ms();
  probe_kernel().launch(stream, Grid(4), {x, y, 1024});
  stream.synchronize();
  double t2 = now_ms();
  std::cout << nlohmann::json{{"device_setup_ms", t1 - t0},
                              {"launch_ms", t2 - t1},
                              {"compiler_invocations", compiler::compiler_invocations()}}
                   .dump()
            << "\n";
}

// Runs the probe twice in new processes sharing one empty cache folder: the first compiles,
// the second must find the kernel on disk.
nlohmann::json bench_launch(const Device& device) {
  namespace fs = std::filesystem;
  fs::path dir =
      fs::temp_directory_path() / ("flagstone-bench-cache-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::string self = fs::read_symlink("/proc/self/exe").string();
  std::string cmd = "FLAGSTONE_CACHE_DIR='" + dir.string() + "' '" + self +
                    "' bench compiler --cached-launch-probe --device " + device.spec();
  auto spawn = [&] {
    double t0 = now_ms();
    FILE* p = ::popen(cmd.c_str(), "r");
    FS_CHECK(p, kBackend, "bench compiler: cannot start ", cmd);
    std::string text;
    char buf[512];
    while (size_t got = std::fread(buf, 1, sizeof(buf), p)) text.append(buf, got);
    int rc = ::pclose(p);
    double wall = now_ms() - t0;
    FS_CHECK(rc == 0, kBackend, "bench compiler: probe process failed (", rc, "): ", cmd);
    nlohmann::json j = nlohmann::json::parse(text);
    j["process_wall_ms"] = wall;
    return j;
  };
  nlohmann::json first = spawn();
  nlohmann::json second = spawn();
  fs::remove_all(dir);
  return {{"device", device.spec()},
          {"first_compile_ms", first["launch_ms"]},
          {"first_compiler_invocations", first["compiler_invocations"]},
          {"cached_launch_ms", second["launch_ms"]},
          {"cached_compiler_invocations", second["compiler_invocations"]},
          {"cached_process_wall_ms", second["process_wall_ms"]},
          {"cached_device_setup_ms", second["device_setup_ms"]}};
}

void print_text(const nlohmann::json& r) {
  if (!r.contains("memory")) {
    std::printf("%s:\n", r["gemm"]["device"].get<std::string>().c_str());
  } else {
    const auto& m = r["memory"];
    std::printf("%s (%s): device copy %.1f GB/s (read+write), %.0f MiB per tensor\n",
                m["device"].get<std::string>().c_str(), m["name"].get<std::string>().c_str(),
                m["device_copy_gbps"].get<double>(),
                m["bytes_per_tensor"].get<double>() / 1048576.0);
    std::printf("  %-10s %10s %10s %9s %10s  %s\n", "kernel", "ms", "GB/s", "of copy", "max err",
                "config");
    for (const auto& k : m["kernels"])
      std::printf("  %-10s %10.3f %10.1f %8.1f%% %10.2e  %s\n",
                  k["kernel"].get<std::string>().c_str(), k["ms"].get<double>(),
                  k["gbps"].get<double>(), 100 * k["fraction_of_copy"].get<double>(),
                  k["max_rel_error"].get<double>(), k["config"].get<std::string>().c_str());
    if (m.contains("row_variants")) {
      std::printf("  row kernel variants (each config):\n");
      for (const auto& k : m["row_variants"])
        std::printf("  %-10s %-24s %8.3f %10.1f %8.1f%% %10.2e  %s\n",
                    k["kernel"].get<std::string>().c_str(), k["variant"].get<std::string>().c_str(),
                    k["ms"].get<double>(), k["gbps"].get<double>(),
                    100 * k["fraction_of_copy"].get<double>(), k["max_rel_error"].get<double>(),
                    k["config"].get<std::string>().c_str());
    }
  }
  const auto& g = r["gemm"];
  std::printf("  gemm bf16 %lldx%lldx%lld: %.3f ms, %.1f TFLOP/s  (%s)",
              g["shape"][0].get<long long>(), g["shape"][1].get<long long>(),
              g["shape"][2].get<long long>(), g["ms"].get<double>(), g["tflops"].get<double>(),
              g["config"].get<std::string>().c_str());
  if (g.contains("cublas_ms"))
    std::printf("; cuBLAS %.3f ms, %.1f TFLOP/s; ratio %.3f; max |diff| %.2e",
                g["cublas_ms"].get<double>(), g["cublas_tflops"].get<double>(),
                g["ratio_vs_cublas"].get<double>(), g["max_abs_diff_vs_cublas"].get<double>());
  else if (g.contains("cublas"))
    std::printf("; cuBLAS: %s", g["cublas"].get<std::string>().c_str());
  if (!g["correct"].get<bool>()) std::printf("; NO CONFIG CORRECT");
  std::printf("\n");
  if (!r.contains("launch")) return;
  const auto& l = r["launch"];
  std::printf(
      "  first compile+launch %.1f ms (%d toolchain runs); cached launch in a new process %.2f ms "
      "(%d toolchain runs; process wall %.0f ms incl. device setup %.0f ms)\n",
      l["first_compile_ms"].get<double>(), l["first_compiler_invocations"].get<int>(),
      l["cached_launch_ms"].get<double>(), l["cached_compiler_invocations"].get<int>(),
      l["cached_process_wall_ms"].get<double>(), l["cached_device_setup_ms"].get<double>());
  std::fflush(stdout);
}

void run(const Options& o) {
  if (o.probe) return run_probe(o);
  std::vector<Device> devices;
  if (o.devices.empty()) {
    devices = runtime::all_devices();
  } else {
    for (const auto& spec : o.devices) devices.push_back(Device::get(spec));
  }
  nlohmann::json results = nlohmann::json::array();
  for (const Device& device : devices) {
    nlohmann::json r = {{"gemm", bench_compiler::bench_gemm(device, o)}};
    if (!o.gemm_only) {
      r["memory"] = bench_compiler::bench_memory(device, o);
      r["launch"] = bench_launch(device);
    }
    if (!o.json) print_text(r);
    results.push_back(std::move(r));
  }
  if (o.json) std::cout << results.dump(2) << "\n";
}

}  // namespace

void register_bench_compiler_command(CLI::App& bench) {
  auto options = std::make_shared<bench_compiler::Options>();
  CLI::App* cmd = bench.add_subcommand(
      "compiler",
      "Kernels generated by the tile compiler vs the device's copy bandwidth and vendor peers.");
  cmd->add_option("-d,--device", options->devices,
                  "Devices to measure (default: all), e.g. cuda:0, opencl:0, cpu");
  cmd->add_option("--size-mib", options->size_mib,
                  "MiB per tensor for copy/add/softmax/rms_norm (default 256 on GPUs, 16 else)")
      ->check(CLI::Range(0.0, 8191.0));
  cmd->add_option("--gemm", options->gemm, "GEMM size M=N=K (default 4096 on GPUs, 256 else)")
      ->check(CLI::Range(int64_t{0}, int64_t{16384}));
  cmd->add_option("--repeat", options->repeat, "Timed repetitions per config (median)")
      ->default_val(10)
      ->check(CLI::Range(1, 10000));
  cmd->add_option("--gemm-config", options->gemm_configs,
                  "GEMM candidate to time instead of the built-in list (repeatable), e.g. "
                  "BM=128,BN=256,BK=64,num_warps=8,num_stages=4[,tma=1,wgmma=0,occupancy=2]");
  cmd->add_flag("--gemm-b-transposed", options->gemm_b_t,
                "GEMM with B stored [N, K] and read transposed (x @ w.T, as in linear layers)");
  cmd->add_flag("--gemm-only", options->gemm_only,
                "Only the GEMM (no memory-bound kernels, no launch-time probe)");
  cmd->add_flag("--row-variants", options->row_variants,
                "Also time every written variant of softmax and rms_norm (row per program, "
                "rows per program, persistent with prefetch, occupancy hints), each config");
  cmd->add_flag("--json", options->json, "Print JSON");
  cmd->add_flag("--cached-launch-probe", options->probe,
                "Internal: launch one kernel through the caches and print the time as JSON");
  cmd->footer(
      "Each kernel runs with each of its candidate configs (median of --repeat runs); the best\n"
      "is reported. Memory-bound kernels count bytes read + written, like the device copy that\n"
      "is measured in the same run. The GEMM (bf16 in, f32 out) is compared with cuBLAS\n"
      "cublasGemmEx (f32 compute) on cuda devices. Launch times come from two new processes\n"
      "sharing an empty FLAGSTONE_CACHE_DIR: the first compiles, the second loads from disk.\n"
      "Example: flagstone bench compiler --device cuda:0 --json");
  cmd->callback([options] { run(*options); });
}

}  // namespace flagstone::cli
