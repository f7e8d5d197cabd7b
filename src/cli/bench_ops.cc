// `flagstone bench ops`: the operator benchmark (src/bench) on one device: kernel, call and
// launch-overhead times per op and size against measured peaks, a baseline and optional peer.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>

#include "commands.h"
#include "flagstone/base/error.h"
#include "flagstone/bench/ops_bench.h"
#include "flagstone/ops/log.h"

namespace flagstone::cli {
namespace {

struct BenchOpsOptions {
  bench::OpsBenchConfig config;
  std::string ops = "all";
  std::string sizes;
  std::string peer_json;
  std::string json_out;
  std::string from_json;
  bool json = false;
  bool quiet = false;
  bool no_baseline = false;
};

void run(BenchOpsOptions& o) {
  bench::OpsBenchReport report;
  if (!o.from_json.empty()) {
    report = bench::report_from_json(bench::peer_json_from_file(o.from_json), o.from_json);
  } else {
    o.config.ops = bench::parse_op_list(o.ops);
    if (!o.sizes.empty()) o.config.sizes = bench::parse_sizes(o.sizes);
    o.config.baseline = !o.no_baseline;
    ops::set_log_sink(ops::stderr_log_sink(ops::LogLevel::kWarning));
    auto progress = [&o](const std::string& line) {
      if (!o.quiet) std::fprintf(stderr, "bench ops: %s\n", line.c_str());
    };
    report = bench::run_ops_bench(o.config, progress);
  }
  if (!o.peer_json.empty()) {
    int matched = bench::merge_peer(report, bench::peer_json_from_file(o.peer_json), o.peer_json);
    if (!o.quiet)
      std::fprintf(stderr, "bench ops: peer %s matched %d of %zu rows\n", report.peer.c_str(),
                   matched, report.rows.size());
  }
  if (!o.json_out.empty()) {
    std::ofstream out(o.json_out);
    FS_CHECK(out.good(), kIo, "bench ops: cannot write --json-out file '", o.json_out, "'");
    out << bench::to_json(report).dump(2) << "\n";
  }
  if (o.json)
    std::cout << bench::to_json(report).dump(2) << "\n";
  else
    std::cout << bench::format_table(report);
}

}  // namespace

void register_bench_ops_command(CLI::App& bench_group) {
  auto o = std::make_shared<BenchOpsOptions>();
  bench::OpsBenchConfig& c = o->config;
  CLI::App* cmd = bench_group.add_subcommand(
      "ops", "Operator time, GB/s, TFLOP/s and % of peak per op and size, vs a baseline.");
  cmd->add_option("-d,--device", c.device, "Device to measure, e.g. cpu, cuda:0, opencl:0")
      ->default_val("cpu");
  cmd->add_option("--ops", o->ops,
                  "Comma-separated ops: add mul silu_and_mul softmax rms_norm layer_norm rotary "
                  "cross_entropy mm linear attention, or all")
      ->default_val("all");
  cmd->add_option(
      "--sizes", o->sizes,
      "Token counts, e.g. 1,512,8k (default per op: 1024,8192 on GPUs; smaller on cpu and "
      "on OpenCL devices that are cpus, such as PoCL)");
  cmd->add_option("--dtype", c.dtype, "f32, f16, bf16 or auto (f32 on cpus, bf16 elsewhere)")
      ->default_val("auto");
  cmd->add_option("--reps", c.reps, "Timed repetitions per mode; the median is reported")
      ->default_val(20)
      ->check(CLI::Range(1, 100000));
  cmd->add_option("--warmup", c.warmup, "Untimed calls before timing")
      ->default_val(2)
      ->check(CLI::Range(0, 1000));
  cmd->add_option("--max-seconds", c.max_seconds,
                  "Stop repeating one measurement after this long (3 repetitions at least)")
      ->default_val(1.0)
      ->check(CLI::Range(0.001, 3600.0));
  cmd->add_option("--overhead-calls", c.overhead_calls,
                  "Calls enqueued back to back for the host overhead table (0: skip it)")
      ->default_val(1000)
      ->check(CLI::Range(0, 10000000));
  cmd->add_flag("--no-baseline", o->no_baseline, "Skip the per-op baseline measurements");
  cmd->add_option("--hidden", c.dims.hidden, "Model hidden size")->default_val(4096);
  cmd->add_option("--ffn", c.dims.ffn, "MLP intermediate size")->default_val(11008);
  cmd->add_option("--heads", c.dims.heads, "Attention heads")->default_val(32);
  cmd->add_option("--head-dim", c.dims.head_dim, "Head dimension")->default_val(128);
  cmd->add_option("--vocab", c.dims.vocab, "Vocabulary size (softmax, cross_entropy)")
      ->default_val(32000);
  cmd->add_option("--copy-mib", c.copy_mib,
                  "Copy size for the bandwidth peak (default 256 MiB on cpus, 1024 elsewhere)");
  cmd->add_option("--gemm-size", c.gemm_size,
                  "Square GEMM size for the compute peak (default 2048 on cpus, 8192 elsewhere)");
  cmd->add_option("--peer-json", o->peer_json,
                  "Merge a peer's timings (tools/bench/torch_ops_peer.py output) into the table");
  cmd->add_option("--json-out", o->json_out, "Also write the JSON report to this file");
  cmd->add_option("--from-json", o->from_json,
                  "Render a saved --json report instead of measuring (with --peer-json: merge)");
  cmd->add_flag("--json", o->json, "Print the JSON report instead of the table");
  cmd->add_flag("-q,--quiet", o->quiet, "No progress lines on stderr");
  cmd->footer(
      "Each op runs at model shapes built from a token count T and the model dims: add/mul,\n"
      "rms_norm, layer_norm on [T, hidden]; silu_and_mul on [T, 2*ffn]; softmax, cross_entropy\n"
      "on [T, vocab]; rotary (neox) on [T, heads, head_dim]; mm [T, hidden] x [hidden, hidden];\n"
      "linear [T, hidden] x [ffn, hidden]^T; attention causal over [1, heads, T, head_dim].\n"
      "Modes: kernel = device events around one call (median); call = ops::call + synchronize\n"
      "(dispatch and allocation included); host overhead = calls at 1 token and tiny dims\n"
      "enqueued back to back. Baselines, measured in the same run: OpenBLAS called directly\n"
      "(cpu GEMM), the vendor provider forced past dispatch (GEMM elsewhere), a copy of the same\n"
      "bytes (memory-bound ops: STREAM-style on cpu, runtime copy elsewhere).\n"
      "Examples:\n"
      "  flagstone bench ops --ops add,softmax,mm --sizes 1k,4k\n"
      "  flagstone bench ops -d cuda:0 --json-out ours.json\n"
      "  python3 tools/bench/torch_ops_peer.py > torch.json &&\n"
      "    flagstone bench ops -d cuda:0 --peer-json torch.json\n"
      "Environment: FLAGSTONE_NUM_THREADS (cpu threads), FLAGSTONE_OPS_* (dispatch policy).");
  cmd->callback([o] { run(*o); });
}

}  // namespace flagstone::cli
