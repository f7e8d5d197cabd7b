// Runs `flagstone bench ops`: the device's peaks (copy bandwidth, vendor GEMM rate), then each op
// case in three modes (device-event kernel time, end-to-end call time, host launch rate) and its
// baseline (vendor library or a copy of the same bytes), all in one process and one run.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <sstream>

#include "flagstone/bench/ops_bench.h"
#include "flagstone/ops/ops.h"
#include "flagstone/runtime/cpu_features.h"
#include "flagstone/runtime/thread_pool.h"
#include "ops_cases.h"

#ifdef FLAGSTONE_HAVE_CBLAS
#include <cblas.h>
#endif

namespace flagstone::bench {
namespace {

using runtime::Event;
using runtime::Stream;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double median(std::vector<double> v) {
  FS_ASSERT(!v.empty());
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

struct Sample {
  double us = 0;
  int reps = 0;
};

// Repetition count: `reps` at most, 3 at least, fewer than `reps` once max_seconds have passed.
bool more_reps(int done, const OpsBenchConfig& cfg, Clock::time_point t0) {
  if (done < 3) return true;
  return done < cfg.reps && seconds_since(t0) < cfg.max_seconds;
}

// Device time of one call: events recorded before and after each call on the default stream;
// calls are issued back to back, so a device that runs behind the host never idles between
// them and the events bracket the kernels alone.
template <typename Fn>
Sample kernel_time(const Device& device, const OpsBenchConfig& cfg, Fn&& fn) {
  Stream stream = Stream::default_stream(device);
  for (int i = 0; i < cfg.warmup; ++i) fn();
  stream.synchronize();
  std::vector<std::pair<Event, Event>> events;
  auto t0 = Clock::now();
  while (more_reps(static_cast<int>(events.size()), cfg, t0)) {
    events.emplace_back(Event(device), Event(device));
    events.back().first.record(stream);
    fn();
    events.back().second.record(stream);
  }
  stream.synchronize();
  std::vector<double> us;
  for (auto& [start, end] : events) {
    end.synchronize();
    us.push_back(1e3 * start.elapsed_ms(end));
  }
  return {median(us), static_cast<int>(us.size())};
}

// Wall-clock time of one call including dispatch, output allocation and the stream
// synchronize that makes its result usable on the host.
template <typename Fn>
Sample call_time(const Device& device, const OpsBenchConfig& cfg, Fn&& fn) {
  Stream stream = Stream::default_stream(device);
  std::vector<double> us;
  auto t0 = Clock::now();
  while (more_reps(static_cast<int>(us.size()), cfg, t0)) {
    auto start = Clock::now();
    fn();
    stream.synchronize();
    us.push_back(1e6 * seconds_since(start));
  }
  return {median(us), static_cast<int>(us.size())};
}

// What dispatch runs for the case under the current policy: the first implementation in policy
// order that takes the dtype and accepts the call, or the cpu's when the device has none.
std::string served_by(const OpCase& c, const Device& device) {
  const ops::OpSchema& schema = ops::Registry::global().schema(c.registry_op);
  DType dtype = c.inputs[static_cast<size_t>(schema.dispatch_input)].dtype();
  std::vector<Tensor> outputs = ops::allocate_outputs(schema, c.inputs, c.attrs, device);
  ops::Policy policy = ops::policy();
  for (const std::string& backend : {device.backend(), std::string("cpu")}) {
    auto impls = ops::Registry::global().implementations(c.registry_op, backend);
    for (ops::Provider p : policy.order_for(c.registry_op)) {
      for (const ops::Implementation* impl : impls) {
        if (impl->provider != p || !impl->has_dtype(dtype)) continue;
        if (impl->supports) {
          ops::KernelArgs probe{impl->op, c.inputs, outputs, c.attrs, device};
          if (!impl->supports(probe).empty()) continue;
        }
        return backend == device.backend() ? impl->name : impl->name + "+cpu-fallback";
      }
    }
    if (device.is_cpu() || policy.strict) break;
  }
  return "none";
}

const ops::Implementation* vendor_impl(const std::string& op, const Device& device, DType dtype) {
  for (const ops::Implementation* impl : ops::Registry::global().implementations(op))
    if (impl->backend == device.backend() && impl->provider == ops::Provider::kVendor &&
        impl->has_dtype(dtype))
      return impl;
  return nullptr;
}

// A STREAM "copy" kernel (c[i] = a[i]) split over the runtime's cpu thread pool.
double stream_copy_us(const OpsBenchConfig& cfg, size_t bytes) {
  size_t n = std::max<size_t>(1, bytes / sizeof(float));
  std::vector<float> a(n), c(n);
  auto& pool = runtime::cpu_thread_pool();
  auto body = [&] {
    pool.parallel_for(static_cast<int64_t>(n), 1 << 14, [&](int64_t b, int64_t e) {
      const float* src = a.data();
      float* dst = c.data();
      for (int64_t i = b; i < e; ++i) dst[i] = src[i];
    });
  };
  pool.parallel_for(static_cast<int64_t>(n), 1 << 14, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) a[i] = static_cast<float>(i & 1023), c[i] = 0;
  });
  return call_time(Device(), cfg, body).us;
}

double device_copy_us(const Device& device, const OpsBenchConfig& cfg, size_t bytes) {
  runtime::Buffer a = runtime::Buffer::allocate(device, bytes);
  runtime::Buffer b = runtime::Buffer::allocate(device, bytes);
  Stream stream = Stream::default_stream(device);
  runtime::fill_bytes(stream, a, 0, bytes, 1);
  return kernel_time(device, cfg,
                     [&] { runtime::copy_device_to_device(stream, b, 0, a, 0, bytes); })
      .us;
}

#ifdef FLAGSTONE_HAVE_CBLAS
// OpenBLAS called directly on the case's tensors: the bar for GEMM through dispatch.
void openblas_direct(const OpCase& c, float* out) {
  const Tensor &a = c.inputs[0], &b = c.inputs[1];
  bool linear = c.row.op == "linear";
  int m = static_cast<int>(a.size(0)), k = static_cast<int>(a.size(1));
  int n = static_cast<int>(linear ? b.size(0) : b.size(1));
  cblas_sgemm(CblasRowMajor, CblasNoTrans, linear ? CblasTrans : CblasNoTrans, m, n, k, 1.0f,
              a.data<float>(), k, b.data<float>(), linear ? k : n, 0.0f, out, n);
}
#endif

// A device that is a cpu underneath (the cpu backend, or an OpenCL driver such as PoCL running on
// the host) gets the cpu's default sizes and dtype: a GPU's would take it many minutes.
bool on_cpu(const Device& device) {
  return device.info().type == runtime::DeviceType::kCpu;
}

void measure_peaks(const Device& device, const OpsBenchConfig& cfg, DType dtype, Peaks& peaks) {
  double mib = cfg.copy_mib > 0 ? cfg.copy_mib : (on_cpu(device) ? 256 : 1024);
  size_t bytes = static_cast<size_t>(mib * 1024 * 1024);
  double us = device_copy_us(device, cfg, bytes);
  peaks.copy_gbps = 2.0 * static_cast<double>(bytes) / (us * 1e3);
  std::ostringstream src;
  src << "runtime copy " << mib << " MiB, read+write";
  peaks.copy_source = src.str();
  if (device.is_cpu())
    peaks.stream_gbps = 2.0 * static_cast<double>(bytes) / (stream_copy_us(cfg, bytes) * 1e3);
  // Any device running on the host (PoCL too) has its cases and copies go through this cache.
  if (on_cpu(device)) peaks.llc_bytes = static_cast<double>(runtime::last_level_cache_bytes());

  int64_t n = cfg.gemm_size > 0 ? cfg.gemm_size : (on_cpu(device) ? 2048 : 8192);
  double flops = 2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n);
  std::string nn = std::to_string(n) + "^3";
  if (device.is_cpu()) {
#ifdef FLAGSTONE_HAVE_CBLAS
    OpCase c;
    c.row.op = "mm";
    c.inputs = {ops::randn({n, n}, 1, 0, DType::kF32), ops::randn({n, n}, 2, 0, DType::kF32)};
    std::vector<float> out(static_cast<size_t>(n * n));
    double t = call_time(device, cfg, [&] { openblas_direct(c, out.data()); }).us;
    peaks.gemm_tflops = flops / (t * 1e6);
    peaks.gemm_source = "openblas sgemm " + nn;
#else
    peaks.gemm_source = "none: built without OpenBLAS";
#endif
    return;
  }
  const ops::Implementation* vendor = vendor_impl("mm", device, dtype);
  if (!vendor) {
    peaks.gemm_source =
        "none: no vendor mm for " + std::string(dtype_name(dtype)) + " on " + device.backend();
    return;
  }
  std::vector<Tensor> in{ops::randn({n, n}, 1, 0, dtype, device),
                         ops::randn({n, n}, 2, 0, dtype, device)};
  std::vector<Tensor> out;
  ops::call_implementation(*vendor, in, {}, out);
  double t = kernel_time(device, cfg, [&] { ops::call_implementation(*vendor, in, {}, out); }).us;
  peaks.gemm_tflops = flops / (t * 1e6);
  peaks.gemm_source = vendor->name + " " + std::string(dtype_name(dtype)) + " " + nn;
}

void measure_baseline(const OpCase& c, const Device& device, const OpsBenchConfig& cfg, DType dtype,
                      OpsBenchRow& row) {
  if (!c.compute_bound()) {
    // A copy of the same byte count (half read, half written): what a memory-bound op could
    // reach if its arithmetic were free.
    size_t half = static_cast<size_t>(row.bytes / 2);
    if (device.is_cpu()) {
      row.baseline = "stream-copy";
      row.baseline_us = stream_copy_us(cfg, half);
    } else {
      row.baseline = "copy";
      row.baseline_us = device_copy_us(device, cfg, half);
    }
    return;
  }
  if (c.row.op != "mm" && c.row.op != "linear") return;
  if (device.is_cpu()) {
#ifdef FLAGSTONE_HAVE_CBLAS
    if (dtype != DType::kF32) return;
    std::vector<float> out(static_cast<size_t>(
        c.inputs[0].size(0) * (c.row.op == "linear" ? c.inputs[1].size(0) : c.inputs[1].size(1))));
    row.baseline = "openblas";
    row.baseline_us = call_time(device, cfg, [&] { openblas_direct(c, out.data()); }).us;
#endif
    return;
  }
  const ops::Implementation* vendor = vendor_impl(c.registry_op, device, dtype);
  if (!vendor) return;
  row.baseline = vendor->name;
  // The vendor alone: under a policy naming only it, cuBLAS does not yield few-row calls to the
  // native GEMV.
  ops::Policy saved = ops::policy(), pinned = saved;
  pinned.op_providers[c.registry_op] = {ops::Provider::kVendor};
  ops::set_policy(pinned);
  try {
    row.baseline_us = kernel_time(device, cfg, [&] {
                        std::vector<Tensor> out;
                        ops::call_implementation(*vendor, c.inputs, c.attrs, out);
                      }).us;
  } catch (...) {
    ops::set_policy(saved);
    throw;
  }
  ops::set_policy(saved);
}

}  // namespace

OpsBenchReport run_ops_bench(const OpsBenchConfig& cfg,
                             const std::function<void(const std::string&)>& progress) {
  FS_CHECK(cfg.reps >= 1 && cfg.warmup >= 0 && cfg.max_seconds > 0 && cfg.overhead_calls >= 0,
           kInvalidArgument, "bench ops: --reps must be >= 1, --warmup >= 0, --max-seconds > 0");
  Device device = Device::get(cfg.device);
  DType dtype = resolve_dtype(cfg.dtype, on_cpu(device));
  std::vector<std::string> op_names = cfg.ops.empty() ? bench_op_names() : cfg.ops;
  for (const std::string& op : op_names) registry_op_of(op);
  auto say = [&](const std::string& line) {
    if (progress) progress(line);
  };

  OpsBenchReport report;
  report.device = device.spec();
  report.device_name = device.info().name;
  report.dtype = std::string(dtype_name(dtype));
  report.cpu_threads = runtime::cpu_threads();
  report.dims = cfg.dims;
  say("measuring peaks (copy bandwidth, vendor GEMM)");
  measure_peaks(device, cfg, dtype, report.peaks);

  for (const std::string& op : op_names) {
    std::vector<int64_t> sizes = cfg.sizes.empty() ? default_sizes(op, on_cpu(device)) : cfg.sizes;
    for (int64_t tokens : sizes) {
      OpCase c = make_case(op, tokens, cfg.dims, dtype, device);
      OpsBenchRow row = c.row;
      row.impl = served_by(c, device);
      auto call = [&] { ops::call(c.registry_op, c.inputs, c.attrs); };
      Sample k = kernel_time(device, cfg, call);
      row.kernel_us = k.us;
      row.reps = k.reps;
      row.call_us = call_time(device, cfg, call).us;
      row.gbps = row.bytes / (row.kernel_us * 1e3);
      if (c.compute_bound()) {
        row.tflops = row.flops / (row.kernel_us * 1e6);
        if (report.peaks.gemm_tflops > 0) row.peak_fraction = row.tflops / report.peaks.gemm_tflops;
      } else {
        double peak = std::max(report.peaks.copy_gbps, report.peaks.stream_gbps);
        if (peak > 0) row.peak_fraction = row.gbps / peak;
      }
      if (cfg.baseline) measure_baseline(c, device, cfg, dtype, row);
      if (row.baseline_us > 0) row.baseline_ratio = row.baseline_us / row.kernel_us;
      say(op + " " + row.shape + ": " + std::to_string(row.kernel_us) + " us (" + row.impl + ")");
      report.rows.push_back(std::move(row));
    }
  }

  if (cfg.overhead_calls > 0) {
    // The launch path alone: one token at tiny model dims, so no kernel outlasts its launch.
    ModelDims tiny{128, 256, 2, 64, 256};
    Stream stream = Stream::default_stream(device);
    for (const std::string& op : op_names) {
      OpCase c = make_case(op, 1, tiny, dtype, device);
      auto call = [&] { ops::call(c.registry_op, c.inputs, c.attrs); };
      for (int i = 0; i < std::max(cfg.warmup, 10); ++i) call();
      stream.synchronize();
      auto t0 = Clock::now();
      for (int i = 0; i < cfg.overhead_calls; ++i) call();
      stream.synchronize();
      OverheadRow o{op, c.row.shape, cfg.overhead_calls,
                    1e6 * seconds_since(t0) / cfg.overhead_calls, 0};
      say(op + " launch overhead: " + std::to_string(o.us_per_call) + " us/call");
      report.overhead.push_back(o);
    }
  }
  return report;
}

}  // namespace flagstone::bench
