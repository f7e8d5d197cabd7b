// `flagstone bench ops` as a library: large-model operator cases at model-shaped sizes, timed
// three ways (device events, end-to-end call, host launch rate), against the device's measured peak
// and a baseline from the same run, with an optional peer (PyTorch eager) merged in from JSON.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace flagstone::bench {

// Model dimensions that turn a token count into each op's shapes (Llama-2-7B by default).
struct ModelDims {
  int64_t hidden = 4096;
  int64_t ffn = 11008;
  int64_t heads = 32;
  int64_t head_dim = 128;
  int64_t vocab = 32000;
};

struct OpsBenchConfig {
  std::string device = "cpu";
  std::vector<std::string> ops;  // bench op names (bench_op_names()); empty: all
  std::vector<int64_t> sizes;    // token counts; empty: the per-op defaults for the device
  std::string dtype = "auto";    // f32, f16, bf16; auto: f32 on cpu, bf16 elsewhere
  ModelDims dims;
  int reps = 20;              // timed repetitions per mode (median reported), at least 3 run
  int warmup = 2;             // untimed calls first
  double max_seconds = 1.0;   // stop repeating a measurement after this long (>= 3 reps)
  int overhead_calls = 1000;  // calls enqueued back to back for the host-overhead rate; 0: skip
  bool baseline = true;       // measure the per-op baseline (vendor library or copy)
  // Peak measurements: copy size for bandwidth and the square GEMM size (0: device default).
  double copy_mib = 0;
  int64_t gemm_size = 0;
};

// One op case at one size: what is called, how big it is, and what it moves / computes.
struct OpsBenchRow {
  std::string op;  // bench name: add, mul, silu_and_mul, ..., mm, linear, attention
  int64_t tokens = 0;
  std::string shape;  // the main input's shape, "4096x4096"
  std::string dtype;
  std::string impl;      // what dispatch ran ("cuda/vendor/mm"); "+cpu-fallback" when it left
  double bytes = 0;      // minimum bytes read + written
  double flops = 0;      // 0 for memory-bound ops
  int reps = 0;          // timed repetitions of the kernel mode
  double kernel_us = 0;  // device events around one call, median
  double call_us = 0;    // ops::call plus stream synchronize, wall clock, median
  double gbps = 0;
  double tflops = 0;
  double peak_fraction = 0;  // of copy bandwidth (memory-bound) or vendor GEMM rate (compute)
  std::string baseline;      // "openblas", "cpu/vendor/mm", "stream-copy", "copy", or empty
  double baseline_us = 0;
  double baseline_ratio = 0;  // baseline_us / kernel_us: above 1 means faster than the baseline
  std::string peer;           // filled by merge_peer
  double peer_us = 0;
  double peer_ratio = 0;  // peer_us / kernel_us
};

// Host cost per call at the smallest shapes (tokens = 1): calls enqueued back to back, then one
// synchronize; total time over the count.
struct OverheadRow {
  std::string op;
  std::string shape;
  int calls = 0;
  double us_per_call = 0;
  double peer_us_per_call = 0;
};

struct Peaks {
  double copy_gbps = 0;  // runtime device-to-device copy, bytes read + written
  std::string copy_source;
  double stream_gbps = 0;  // cpu: STREAM-style parallel copy loop on the runtime thread pool
  double gemm_tflops = 0;
  std::string gemm_source;  // "openblas sgemm 2048^3", "cuda/vendor/mm bf16 8192^3", or why none
  double llc_bytes = 0;     // cpus (PoCL too): the host's last-level cache (0: unknown)
};

struct OpsBenchReport {
  std::string device;
  std::string device_name;
  std::string dtype;
  int cpu_threads = 0;
  ModelDims dims;
  Peaks peaks;
  std::vector<OpsBenchRow> rows;
  std::vector<OverheadRow> overhead;
  std::string peer;  // the peer's description once merged
};

// The ops the bench knows, in table order, and the registry op each one calls.
const std::vector<std::string>& bench_op_names();
std::string registry_op_of(std::string_view bench_op);
// "add,mul" (also "rotary" for rotary_embedding, "sdpa" for attention, "all"); throws
// kInvalidArgument naming an unknown op and listing the known ones.
std::vector<std::string> parse_op_list(std::string_view text);
// "1,512,8k" -> {1, 512, 8192}; k/K multiplies by 1024. Throws kInvalidArgument naming the entry.
std::vector<int64_t> parse_sizes(std::string_view text);
// The shape string and byte/flop counts of one case, as the report gives them (no device work).
OpsBenchRow describe_case(std::string_view op, int64_t tokens, const ModelDims& dims,
                          std::string_view dtype);
// The token counts measured by default: GPU sizes, or smaller ones on a cpu (`on_cpu`: the cpu
// backend, or an OpenCL driver running on the host such as PoCL).
std::vector<int64_t> default_sizes(std::string_view op, bool on_cpu);

// Runs the benchmark. `progress` (optional) receives one line per finished measurement.
OpsBenchReport run_ops_bench(const OpsBenchConfig& config,
                             const std::function<void(const std::string&)>& progress = {});

// Adds a peer's timings (tools/bench/torch_ops_peer.py output) to matching rows: same op, tokens,
// shape and dtype. Throws kFormat naming `origin` and the bad field. Returns the rows matched.
int merge_peer(OpsBenchReport& report, const nlohmann::json& peer, std::string_view origin);
// Reads a JSON file (a peer's output or a saved report); kIo or kFormat name the path.
nlohmann::json peer_json_from_file(const std::string& path);

std::string format_table(const OpsBenchReport& report);
nlohmann::json to_json(const OpsBenchReport& report);
OpsBenchReport report_from_json(const nlohmann::json& json, std::string_view origin);

}  // namespace flagstone::bench
