// `flagstone bench model`: prompt processing (ppN) and generation (tgN) speed of a model in the
// llama-bench convention, with achieved memory bandwidth and FLOP/s as fractions of the device's
// copy bandwidth and GEMM rate measured in the same run.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>
#include <vector>

#include "commands.h"
#include "flagstone/engine/model/model.h"
#include "flagstone/engine/model/synthetic.h"
#include "flagstone/ops/ops.h"
#include "flagstone/runtime/cpu_features.h"
#include "flagstone/runtime/thread_pool.h"
#include "progress_bar.h"

namespace flagstone::cli {
namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string model;
  std::string synthetic;
  std::string device = "cpu";
  std::string dtype;
  std::vector<int64_t> prompt{512};
  std::vector<int64_t> gen{128};
  std::vector<int64_t> depth{0};
  int reps = 5;
  uint64_t seed = 1;
  bool json = false;
  bool no_peak = false;
  bool no_graph = false;
  bool profile = false;
};

double seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

struct Stats {
  double mean = 0, stddev = 0;
};
Stats stats_of(const std::vector<double>& v) {
  Stats s;
  s.mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  if (v.size() > 1) {
    double sq = 0;
    for (double x : v) sq += (x - s.mean) * (x - s.mean);
    s.stddev = std::sqrt(sq / static_cast<double>(v.size() - 1));
  }
  return s;
}

struct Peak {
  double copy_gbps = 0;   // bytes read + written per second
  double gemm_flops = 0;  // in the model's activation dtype
  int64_t gemm_n = 0;
  size_t copy_bytes = 0;
};

// The copy that measures the bandwidth peak: 1 GiB on a GPU; on the cpu 256 MiB, or twice the
// last-level cache where that is larger, so the copy measures memory, not the cache. (On a VM
// reporting a 480 MiB L3 the 960 MiB copy measured 42 GB/s against 26 GB/s at 256 MiB: each
// thread's 128 MiB slice was under glibc's non-temporal threshold, 190 MiB there, so memmove used
// cached stores, which read every destination line first.)
size_t copy_bytes_for(const Device& device) {
  if (!device.is_cpu()) return size_t{1} << 30;
  const size_t llc = runtime::last_level_cache_bytes();
  size_t bytes = std::max(size_t{256} << 20, (2 * llc + (size_t{1} << 20) - 1) >> 20 << 20);
  // Two such buffers: at most a quarter of the host's memory (a cache reported as huge).
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  if (pages > 0 && page > 0)
    bytes = std::min(bytes, static_cast<size_t>(pages) * static_cast<size_t>(page) / 8 >> 20 << 20);
  return std::max(bytes, size_t{64} << 20);
}

// Copy bandwidth with the runtime's device copy. The cpu backend's copy is one memmove, so on
// the cpu every thread of the pool copies its own slice, as the model's kernels read in parallel.
double measure_copy(const Device& device, size_t bytes) {
  runtime::Buffer a = runtime::Buffer::allocate(device, bytes);
  runtime::Buffer b = runtime::Buffer::allocate(device, bytes);
  Stream stream = Stream::default_stream(device);
  runtime::fill_bytes(stream, a, 0, bytes, 1);
  runtime::fill_bytes(stream, b, 0, bytes, 2);
  auto copy = [&] {
    if (device.is_cpu()) {
      const int64_t chunks = runtime::cpu_threads();
      const size_t chunk = (bytes / static_cast<size_t>(chunks) + 63) / 64 * 64;
      runtime::cpu_thread_pool().parallel_for(chunks, 1, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          size_t off = static_cast<size_t>(i) * chunk;
          if (off < bytes)
            runtime::copy_device_to_device(stream, b, off, a, off, std::min(chunk, bytes - off));
        }
      });
    } else {
      runtime::copy_device_to_device(stream, b, 0, a, 0, bytes);
    }
  };
  copy();
  device.synchronize();
  std::vector<double> times;
  for (int i = 0; i < 7; ++i) {
    auto t0 = Clock::now();
    copy();
    device.synchronize();
    times.push_back(seconds(t0, Clock::now()));
  }
  std::sort(times.begin(), times.end());
  return 2.0 * static_cast<double>(bytes) / times[times.size() / 2] / 1e9;
}

// The best of a few square matrix products, growing the size while one takes under 50 ms so
// that a slow device is not asked for a huge product.
double measure_gemm(const Device& device, DType dtype, int64_t* size) {
  double best = 0;
  for (int64_t n = 256; n <= 8192; n *= 2) {
    Tensor a = ops::cast(ops::rand({n, n}, 1, 0, DType::kF32, device), dtype);
    Tensor b = ops::cast(ops::rand({n, n}, 2, 0, DType::kF32, device), dtype);
    ops::mm(a, b);
    device.synchronize();
    double fastest = 1e30;
    for (int i = 0; i < 3; ++i) {
      auto t0 = Clock::now();
      ops::mm(a, b);
      device.synchronize();
      fastest = std::min(fastest, seconds(t0, Clock::now()));
    }
    double rate = 2.0 * static_cast<double>(n) * n * n / fastest;
    if (rate > best) best = rate, *size = n;
    if (fastest > 0.05) break;
  }
  return best;
}

// The most tokens any test holds in its cache: the deepest prefill plus the longest test.
int64_t longest_context(const Options& o) {
  int64_t longest = 0;
  for (int64_t p : o.prompt) longest = std::max(longest, p);
  for (int64_t g : o.gen) longest = std::max(longest, g);
  int64_t deepest = 0;
  for (int64_t d : o.depth) deepest = std::max(deepest, d);
  return deepest + longest;
}

// llama-bench's test names: pp512, tg128, tg128 @ d4096.
std::string test_name(const char* kind, int64_t n, int64_t depth) {
  return kind + std::to_string(n) + (depth > 0 ? " @ d" + std::to_string(depth) : "");
}

struct Result {
  std::string test;  // "pp512", "tg128", "tg128 @ d4096" (llama-bench's names)
  int64_t n_prompt = 0, n_gen = 0, n_depth = 0;
  std::vector<double> samples_ts;
  Stats ts;
  double gbps = 0, flops = 0;
};

class Bench {
 public:
  Bench(const Options& o, engine::Model& model) : o_(o), model_(model) {
    const engine::ModelConfig& c = model.config();
    device_ = model.info().device;
    const int64_t longest = longest_context(o);
    cache_ = model.new_cache(1, longest + 1);
    std::vector<int64_t> ids(static_cast<size_t>(longest));
    uint64_t state = o.seed;
    for (int64_t& id : ids) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      id = static_cast<int64_t>((state >> 33) % static_cast<uint64_t>(c.vocab_size));
    }
    tokens_ = Tensor::from_vector(ids, {1, longest}, device_);
    ids_ = runtime::PinnedHostBuffer(device_, 2 * sizeof(int64_t));
    events_ = {runtime::Event(device_), runtime::Event(device_)};
  }

  // The cache emptied, then filled with `depth` tokens (untimed), as llama-bench's -d does.
  void start_at(int64_t depth) {
    cache_.clear();
    if (depth > 0) model_.forward(tokens_.narrow(1, 0, depth), cache_);
    device_.synchronize();
  }

  // One forward pass over `n` prompt tokens after `depth` cached ones.
  double prompt_seconds(int64_t n, int64_t depth) {
    start_at(depth);
    auto t0 = Clock::now();
    model_.forward(tokens_.narrow(1, depth, n), cache_);
    device_.synchronize();
    return seconds(t0, Clock::now());
  }

  // `n` tokens one at a time after `depth` cached ones, each picked greedily on the device; the
  // chosen id reaches the host every step and is checked (written into page-locked memory by the
  // step itself on a recorded CUDA step, else copied into one of two pinned slots). The next
  // step is queued before the host waits for this one's id, as a serving loop overlaps its host
  // work with the device, so the device does not idle on the round trip.
  double generate_seconds(int64_t n, int64_t depth) {
    start_at(depth);
    auto t0 = Clock::now();
    const int64_t vocab = model_.config().vocab_size;
    if (sync_loop_) {
      // FLAGSTONE_BENCH_TG=sync: logits out of each step, argmax, then wait for the id.
      Tensor token = tokens_.narrow(1, depth, 1);
      for (int64_t i = 0; i < n; ++i) {
        Tensor logits = model_.forward(token, cache_);
        Tensor next = ops::argmax(logits.reshape({1, vocab}), 1, true);
        int64_t id = next.to_vector<int64_t>()[0];
        if (id < 0 || id >= vocab) throw_error(ErrorCategory::kInternal, "argmax gave id ", id);
        token = next.reshape({1, 1});
      }
      device_.synchronize();
      return seconds(t0, Clock::now());
    }
    Stream stream = Stream::default_stream(device_);
    Tensor next = n > 0 ? model_.forward_greedy(tokens_.narrow(1, depth, 1), cache_) : Tensor();
    for (int64_t i = 0; i < n; ++i) {
      const size_t slot = static_cast<size_t>(i % 2);
      FS_CHECK(next.dtype() == DType::kI64 && next.numel() == 1, kInternal, "greedy step gave ids ",
               next.describe());
      // Where the step itself wrote the id into host memory, nothing is queued between steps;
      // otherwise (or with FLAGSTONE_BENCH_TG=copy, to compare) a copy follows each step.
      const int64_t* id_at = copy_loop_ ? nullptr : model_.greedy_host_ids(cache_);
      if (!id_at) {
        id_at = static_cast<int64_t*>(ids_.data()) + slot;
        runtime::copy_device_to_host(stream, static_cast<int64_t*>(ids_.data()) + slot,
                                     next.buffer(), next.byte_offset(), sizeof(int64_t));
      }
      events_[slot].record(stream);
      if (i + 1 < n) next = model_.forward_greedy(next, cache_);
      events_[slot].synchronize();
      const int64_t id = *id_at;
      if (id < 0 || id >= vocab) throw_error(ErrorCategory::kInternal, "argmax gave id ", id);
    }
    device_.synchronize();
    return seconds(t0, Clock::now());
  }

  // One decode step op by op, each op timed on the device, after a short prefill (the second of
  // two runs, so first-call setup is not counted).
  std::vector<engine::OpTime> profile_step() {
    const int64_t prefill = std::max<int64_t>(1, std::min<int64_t>(64, cache_.capacity() - 3));
    std::vector<engine::OpTime> times;
    for (int run = 0; run < 2; ++run) {
      cache_.clear();
      model_.forward(tokens_.narrow(1, 0, prefill), cache_);
      times = model_.profile_forward(tokens_.narrow(1, prefill, 1), cache_);
    }
    return times;
  }

  Result run_prompt(int64_t n, int64_t depth) {
    Result r;
    r.test = test_name("pp", n, depth);
    r.n_prompt = n, r.n_depth = depth;
    prompt_seconds(n, depth);  // warm-up
    for (int i = 0; i < o_.reps; ++i) r.samples_ts.push_back(n / prompt_seconds(n, depth));
    r.ts = stats_of(r.samples_ts);
    // Causal attention: query i attends to depth + i + 1 keys; QK^T and PV cost 2 FLOPs per
    // pair each.
    const engine::ModelConfig& c = model_.config();
    double pairs = static_cast<double>(n) * depth + static_cast<double>(n) * (n + 1) / 2.0;
    double attention = 4.0 * c.num_hidden_layers * c.num_attention_heads * c.head_dim * pairs;
    double flops_per_pass = 2.0 * model_.info().matmul_parameters * n + attention;
    r.flops = flops_per_pass * r.ts.mean / n;
    r.gbps = static_cast<double>(model_.info().bytes_per_token) * r.ts.mean / n / 1e9;
    return r;
  }

  Result run_generate(int64_t n, int64_t depth) {
    Result r;
    r.test = test_name("tg", n, depth);
    r.n_gen = n, r.n_depth = depth;
    generate_seconds(std::min<int64_t>(n, 8), depth);  // warm-up
    for (int i = 0; i < o_.reps; ++i) r.samples_ts.push_back(n / generate_seconds(n, depth));
    r.ts = stats_of(r.samples_ts);
    // Step i reads the weights once and depth + i + 1 cached keys and values of every layer.
    const engine::ModelConfig& c = model_.config();
    double avg_ctx = static_cast<double>(depth) + (n + 1) / 2.0;
    double kv_row = 2.0 * c.num_hidden_layers * c.num_key_value_heads * c.head_dim *
                    static_cast<double>(dtype_size(cache_.dtype()));
    double bytes = static_cast<double>(model_.info().bytes_per_token) + kv_row * avg_ctx;
    double flops = 2.0 * model_.info().matmul_parameters +
                   4.0 * c.num_hidden_layers * c.num_attention_heads * c.head_dim * avg_ctx;
    r.gbps = bytes * r.ts.mean / 1e9;
    r.flops = flops * r.ts.mean;
    return r;
  }

 private:
  const Options& o_;
  engine::Model& model_;
  Device device_;
  engine::KvCache cache_;
  Tensor tokens_;
  runtime::PinnedHostBuffer ids_;
  std::vector<runtime::Event> events_;
  // Earlier sessions' tg loops, for comparing in one run: FLAGSTONE_BENCH_TG=sync (step by
  // step: logits out, argmax, wait) or =copy (each id copied to the host after its step).
  const std::string tg_loop_ = [] {
    const char* env = std::getenv("FLAGSTONE_BENCH_TG");
    return std::string(env ? env : "");
  }();
  const bool sync_loop_ = tg_loop_ == "sync", copy_loop_ = tg_loop_ == "copy";
};

std::string human_params(int64_t n) {
  char buf[32];
  if (n >= 1000000000)
    std::snprintf(buf, sizeof buf, "%.2f B", n / 1e9);
  else
    std::snprintf(buf, sizeof buf, "%.2f M", n / 1e6);
  return buf;
}

std::unique_ptr<engine::Model> load(const Options& o, std::string* name) {
  FS_CHECK(o.model.empty() != o.synthetic.empty(), kInvalidArgument,
           "give a model with -m MODEL or a random-weight shape with --synthetic NAME (one of "
           "them)");
  engine::ModelOptions mo;
  mo.device = Device::get(o.device);
  mo.max_context = longest_context(o) + 1;
  mo.graphs = !o.no_graph;
  mo.describe_graph = o.profile;
  if (!o.json && isatty(STDERR_FILENO)) {
    mo.progress = [](const engine::LoadProgress& p) {
      double f = p.bytes_total ? static_cast<double>(p.bytes_done) / p.bytes_total : 1.0;
      draw_progress_bar("loading", f, p.bytes_done / 1048576.0, p.bytes_total / 1048576.0,
                        p.tensors_done, p.tensors_total, "tensors");
    };
  }
  std::optional<DType> dtype;
  if (!o.dtype.empty()) dtype = parse_dtype(o.dtype);
  if (!o.synthetic.empty()) {
    engine::ModelConfig config = engine::synthetic_config(o.synthetic);
    DType stored = dtype.value_or(DType::kBF16);
    if (!dtype && (mo.device.is_cpu() || mo.device.backend() == "opencl")) stored = DType::kF32;
    if (is_floating(stored)) mo.dtype = stored;
    *name = o.synthetic + " " + std::string(dtype_name(stored));
    return engine::synthetic_model(config, stored, mo, o.seed);
  }
  if (dtype) {
    FS_CHECK(is_floating(*dtype), kInvalidArgument, "--dtype ", o.dtype,
             " for a model file sets the activation dtype (f32, f16, bf16); to quantize, "
             "convert it first: flagstone convert ",
             o.model, " -o model.gguf --type ", o.dtype);
    mo.dtype = dtype;
  }
  auto model = engine::load_model(o.model, mo);
  *name = model->info().architecture + " " + human_params(model->info().parameters);
  return model;
}

void run(const Options& o) {
  FS_CHECK(o.reps >= 1, kInvalidArgument, "-r must be at least 1");
  for (int64_t p : o.prompt) FS_CHECK(p >= 0, kInvalidArgument, "-p ", p, " must be >= 0");
  for (int64_t g : o.gen) FS_CHECK(g >= 0, kInvalidArgument, "-n ", g, " must be >= 0");
  for (int64_t d : o.depth) FS_CHECK(d >= 0, kInvalidArgument, "-d ", d, " must be >= 0");
  std::string name;
  auto t0 = Clock::now();
  std::unique_ptr<engine::Model> model = load(o, &name);
  double load_seconds = seconds(t0, Clock::now());
  const engine::ModelInfo& info = model->info();
  const Device& device = info.device;

  // The tests run first and the peaks after them: measured first, the GEMM left llama-1b tg128
  // 0.5% slower on an H200 (0.2% with its temporaries handed back; session 25), so the rows
  // print once the peaks are known (a progress bar on a terminal meanwhile).
  Bench bench(o, *model);
  std::vector<Result> results;
  size_t per_depth = 0;
  for (int64_t p : o.prompt) per_depth += p > 0;
  for (int64_t g : o.gen) per_depth += g > 0;
  const size_t tests = per_depth * o.depth.size();
  const bool bar = !o.json && isatty(STDERR_FILENO) && tests > 0;
  auto run_test = [&](const std::string& test, auto&& run_it) {
    if (bar)
      draw_progress_bar("testing", static_cast<double>(results.size()) / tests, 0, 0,
                        results.size(), tests, "tests", test);
    results.push_back(run_it());
    if (bar && results.size() == tests)
      draw_progress_bar("testing", 1.0, 0, 0, tests, tests, "tests", test);
  };
  for (int64_t d : o.depth) {
    for (int64_t p : o.prompt)
      if (p > 0) run_test(test_name("pp", p, d), [&] { return bench.run_prompt(p, d); });
    for (int64_t g : o.gen)
      if (g > 0) run_test(test_name("tg", g, d), [&] { return bench.run_generate(g, d); });
  }
  std::vector<engine::OpTime> profile;
  if (o.profile) profile = bench.profile_step();
  double profile_us = 0;
  for (const engine::OpTime& t : profile) profile_us += t.microseconds;

  Peak peak;
  if (!o.no_peak) {
    peak.copy_bytes = copy_bytes_for(device);
    peak.copy_gbps = measure_copy(device, peak.copy_bytes);
    peak.gemm_flops = measure_gemm(device, info.dtype, &peak.gemm_n);
  }

  int tw = 7;  // the test column fits the longest name
  for (int64_t d : o.depth) {
    for (int64_t p : o.prompt) tw = std::max(tw, static_cast<int>(test_name("pp", p, d).size()));
    for (int64_t g : o.gen) tw = std::max(tw, static_cast<int>(test_name("tg", g, d).size()));
  }
  if (!o.json) {
    std::printf("| %-18s | %9s | %9s | %-8s | %-5s | %*s | %20s | %8s | %6s | %9s | %6s |\n",
                "model", "size", "params", "device", "dtype", tw, "test", "t/s", "GB/s", "%bw",
                "TFLOP/s", "%gemm");
    std::printf("| %.18s | %.9s | %.9s | %.8s | %.5s | %s | %.20s | %.8s | %.6s | %.9s | %.6s |\n",
                "--------------------", "----------", "----------", "----------", "------",
                std::string(static_cast<size_t>(tw), '-').c_str(), "----------------------",
                "----------", "------", "----------", "------");
    std::fflush(stdout);
  }
  auto emit = [&](const Result& r) {
    if (o.json) return;
    char ts[48];
    std::snprintf(ts, sizeof ts, "%.2f ± %.2f", r.ts.mean, r.ts.stddev);
    auto pct = [](double x, double peak_value) {
      return peak_value > 0 ? 100.0 * x / peak_value : 0.0;
    };
    std::printf(
        "| %-18s | %5.2f GiB | %9s | %-8s | %-5s | %*s | %21s | %8.1f | %5.1f%% | %9.3f | %5.1f%% "
        "|\n",
        name.c_str(), info.weight_bytes / 1073741824.0, human_params(info.parameters).c_str(),
        device.spec().c_str(), std::string(dtype_name(info.dtype)).c_str(), tw, r.test.c_str(), ts,
        r.gbps, pct(r.gbps, peak.copy_gbps), r.flops / 1e12, pct(r.flops, peak.gemm_flops));
    std::fflush(stdout);
  };
  for (const Result& r : results) emit(r);

  if (!o.json) {
    std::printf("\n%s (%s): %s, weights %s, loaded in %.1f s, decode step %s\n",
                device.spec().c_str(), device.info().name.c_str(), info.path.c_str(),
                info.weight_types.c_str(), load_seconds,
                info.decode_graph ? "recorded as a graph and replayed" : "run op by op");
    if (!info.decode_graph_error.empty())
      std::printf("recording the decode step failed: %s\n", info.decode_graph_error.c_str());
    if (info.decode_persistent)
      std::printf(
          "decode step: one persistent kernel (FLAGSTONE_ENGINE_PERSISTENT=0 runs a kernel per "
          "op)\n");
    else if (!info.decode_persistent_note.empty())
      std::printf("persistent decode step not used: %s\n", info.decode_persistent_note.c_str());
    if (!info.decode_qkv_attention_note.empty())
      std::printf("q/k/v + attention kernel not used: %s\n",
                  info.decode_qkv_attention_note.c_str());
    if (o.profile && !info.decode_graph_nodes.empty())
      std::printf("recorded decode step: %s\n", info.decode_graph_nodes.c_str());
    if (!profile.empty()) {
      std::printf(
          "\nprofile of one decode step, op by op (device time from events around each op):\n");
      std::printf("| %-40s | %5s | %9s | %9s | %5s | %8s | %5s |\n", "op", "calls", "us", "us/call",
                  "share", "GB/s", "%bw");
      std::printf("| %.40s | %.5s | %.9s | %.9s | %.5s | %.8s | %.5s |\n",
                  "------------------------------------------", "------", "----------",
                  "----------", "------", "---------", "------");
      for (const engine::OpTime& t : profile) {
        // Weight bytes over the op's device time: how close each matrix product gets to copy.
        double gbps = t.bytes > 0 && t.microseconds > 0 ? t.bytes / t.microseconds / 1e3 : 0.0;
        std::printf("| %-40s | %5lld | %9.1f | %9.2f | %4.0f%% | %8.1f | %4.0f%% |\n", t.op.c_str(),
                    static_cast<long long>(t.calls), t.microseconds,
                    t.microseconds / static_cast<double>(t.calls),
                    profile_us > 0 ? 100.0 * t.microseconds / profile_us : 0.0, gbps,
                    peak.copy_gbps > 0 ? 100.0 * gbps / peak.copy_gbps : 0.0);
      }
      std::printf("sum of op device times: %.1f us per token", profile_us);
      if (!results.empty() && results.back().n_gen > 0 && results.back().ts.mean > 0)
        std::printf("; measured %s step: %.1f us", results.back().test.c_str(),
                    1e6 / results.back().ts.mean);
      std::printf("\n");
    }
    if (!o.no_peak) {
      std::printf("peak: copy %.1f GB/s (read + write, %zu MiB), %s GEMM %.3f TFLOP/s (n=%lld)\n",
                  peak.copy_gbps, peak.copy_bytes >> 20,
                  std::string(dtype_name(info.dtype)).c_str(), peak.gemm_flops / 1e12,
                  static_cast<long long>(peak.gemm_n));
      std::printf(
          "GB/s: weight (+ KV cache) bytes read per token x t/s; %%bw of the copy peak. "
          "TFLOP/s: 2 x matmul params (+ attention) per token x t/s; %%gemm of the GEMM "
          "peak.\n");
    }
    return;
  }
  nlohmann::json out;
  out["model"] = name;
  out["path"] = info.path;
  out["architecture"] = info.architecture;
  out["device"] = device.spec();
  out["device_name"] = device.info().name;
  out["dtype"] = std::string(dtype_name(info.dtype));
  out["weight_types"] = info.weight_types;
  out["parameters"] = info.parameters;
  out["weight_bytes"] = info.weight_bytes;
  out["bytes_per_token"] = info.bytes_per_token;
  out["matmul_parameters"] = info.matmul_parameters;
  out["load_seconds"] = load_seconds;
  out["repetitions"] = o.reps;
  out["decode_graph"] = info.decode_graph;
  if (!info.decode_graph_error.empty()) out["decode_graph_error"] = info.decode_graph_error;
  if (!info.decode_graph_nodes.empty()) out["decode_graph_nodes"] = info.decode_graph_nodes;
  out["decode_persistent"] = info.decode_persistent;
  if (!info.decode_persistent_note.empty())
    out["decode_persistent_note"] = info.decode_persistent_note;
  out["decode_qkv_attention"] = info.decode_qkv_attention;
  if (!info.decode_qkv_attention_note.empty())
    out["decode_qkv_attention_note"] = info.decode_qkv_attention_note;
  if (!o.no_peak) {
    out["peak"] = {{"copy_gbps", peak.copy_gbps},
                   {"copy_bytes", peak.copy_bytes},
                   {"gemm_flops", peak.gemm_flops},
                   {"gemm_n", peak.gemm_n}};
  }
  if (!profile.empty()) {
    out["profile"] = nlohmann::json::array();
    for (const engine::OpTime& t : profile)
      out["profile"].push_back(
          {{"op", t.op}, {"calls", t.calls}, {"us", t.microseconds}, {"bytes", t.bytes}});
  }
  out["results"] = nlohmann::json::array();
  for (const Result& r : results) {
    nlohmann::json j = {{"test", r.test},
                        {"n_prompt", r.n_prompt},
                        {"n_gen", r.n_gen},
                        {"n_depth", r.n_depth},
                        {"avg_ts", r.ts.mean},
                        {"stddev_ts", r.ts.stddev},
                        {"samples_ts", r.samples_ts},
                        {"gbps", r.gbps},
                        {"flops", r.flops}};
    if (!o.no_peak) {
      j["bandwidth_fraction"] = peak.copy_gbps > 0 ? r.gbps / peak.copy_gbps : 0.0;
      j["gemm_fraction"] = peak.gemm_flops > 0 ? r.flops / peak.gemm_flops : 0.0;
    }
    out["results"].push_back(j);
  }
  std::cout << out.dump(2) << std::endl;
}

}  // namespace

void register_bench_model_command(CLI::App& bench) {
  auto o = std::make_shared<Options>();
  CLI::App* cmd = bench.add_subcommand(
      "model", "Prompt processing and generation speed of a model (llama-bench's pp/tg tests).");
  cmd->add_option("-m,--model", o->model, "Model folder (config.json + safetensors) or .gguf file");
  std::string presets;
  for (const std::string& p : engine::synthetic_presets())
    presets += (presets.empty() ? "" : ", ") + p;
  cmd->add_option("--synthetic", o->synthetic,
                  "Instead of -m: random weights in the shapes of " + presets +
                      " (llama-1b is Llama-3.2-1B, llama-8b is Llama-3-8B)");
  cmd->add_option("--device", o->device, "Device: cpu, cuda:0, opencl:0 (see `flagstone info`)")
      ->capture_default_str();
  cmd->add_option("--dtype", o->dtype,
                  "With --synthetic: the stored weight type (f32, f16, bf16, q8_0, q4_0; default "
                  "bf16 on GPUs, f32 on cpu/OpenCL). With -m: the activation type");
  cmd->add_option("-p,--n-prompt", o->prompt, "Prompt lengths to test (ppN), e.g. -p 512,2048")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("-n,--n-gen", o->gen, "Generation lengths to test (tgN); 0 skips")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("-d,--n-depth", o->depth,
                  "Tokens already in the KV cache before each test (prefilled, untimed), e.g. "
                  "-d 0,4096: the tests at each depth, named like tg128 @ d4096")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("-r,--repetitions", o->reps, "Timed repetitions of each test")
      ->capture_default_str();
  cmd->add_option("--seed", o->seed, "Seed of the synthetic weights and prompt tokens")
      ->capture_default_str();
  cmd->add_flag("--no-peak", o->no_peak, "Skip measuring the device's copy and GEMM peaks");
  cmd->add_flag("--profile", o->profile,
                "After the tests, time every op of one decode step on the device (op by op)");
  cmd->add_flag("--no-graph", o->no_graph,
                "Run each decode step op by op instead of replaying it as a CUDA graph");
  cmd->add_flag("--json", o->json, "Print one JSON object");
  cmd->footer(
      "ppN runs one forward pass over N prompt tokens; tgN generates N tokens one at a time\n"
      "(greedy on the device, the id copied back every step). Both start from an empty KV cache,\n"
      "or, with -d D, from D cached tokens prefilled untimed (named ppN @ dD, tgN @ dD, as\n"
      "llama-bench names them). Each test is\n"
      "warmed up once, then timed -r times: t/s is mean ± sample standard deviation, as in\n"
      "llama-bench. GB/s counts the weight bytes one token reads (every matrix once, one\n"
      "embedding row, plus the KV cache) and %bw compares it with the device's copy bandwidth\n"
      "(read + write) measured in the same run; TFLOP/s counts 2 FLOPs per matmul parameter per\n"
      "token plus causal attention, and %gemm compares it with a square GEMM in the same dtype.\n"
      "On CUDA the decode step is recorded once as a graph and replayed (--no-graph: op by op).\n"
      "Examples:\n"
      "  flagstone bench model --synthetic llama-1b --device cuda:0 --dtype bf16 -p 512,2048\n"
      "  flagstone bench model -m model-q8_0.gguf -p 128 -n 32 -r 3 --json\n"
      "  flagstone bench model --synthetic llama-1b --dtype q8_0 -p 64 -n 16 -r 2\n"
      "  flagstone bench model --synthetic llama-8b --device cuda:0 -p 0 -n 128 -d 0,4096");
  cmd->callback([o] { run(*o); });
}

}  // namespace flagstone::cli
