// `flagstone bench compiler`, memory-bound kernels: copy, add, softmax and rms_norm written in
// the tile language, against the device copy measured in the same run; with --row-variants
// also every written variant of the two row kernels, so one run compares them.
#include <algorithm>
#include <cmath>
#include <functional>
#include <thread>
#include <vector>

#include "bench_compiler.h"
#include "flagstone/runtime/tensor.h"

namespace flagstone::cli::bench_compiler {
namespace {

using compiler::Grid;
using compiler::Kernel;
using compiler::KernelBuilder;
using compiler::Value;

// ---- the benchmarked kernels, written as a user would write them ----

void build_copy(KernelBuilder& k) {
  int64_t block = k.meta("BLOCK");
  Value x = k.pointer_arg("x", DType::kF32);
  Value y = k.pointer_arg("y", DType::kF32);
  Value n = k.scalar_arg("n", DType::kI32);
  Value offs = k.program_id(0) * block + k.arange(0, block);
  Value mask = offs < n;
  k.store(y + offs, k.load(x + offs, mask, 0.0f), mask);
}

void build_add(KernelBuilder& k) {
  int64_t block = k.meta("BLOCK");
  Value x = k.pointer_arg("x", DType::kF32);
  Value y = k.pointer_arg("y", DType::kF32);
  Value z = k.pointer_arg("z", DType::kF32);
  Value n = k.scalar_arg("n", DType::kI32);
  Value offs = k.program_id(0) * block + k.arange(0, block);
  Value mask = offs < n;
  k.store(z + offs, k.load(x + offs, mask, 0.0f) + k.load(y + offs, mask, 0.0f), mask);
}

// rms_norm of the rows of a contiguous [rows, n] matrix times a weight row; N (>= n) is the
// tile width. One program per row; `w_first` (the benchmarked form) loads the weight before the
// reduction, so its latency hides behind the row's and the compiler keeps fewer registers live
// across the barrier (48 instead of 57 at 8 warps).
void build_rms_norm_row(KernelBuilder& k, bool w_first) {
  int64_t width = k.meta("N");
  Value x = k.pointer_arg("x", DType::kF32);
  Value w = k.pointer_arg("w", DType::kF32);
  Value y = k.pointer_arg("y", DType::kF32);
  Value n = k.scalar_arg("n", DType::kI32);
  Value eps = k.scalar_arg("eps", DType::kF32);
  Value cols = k.arange(0, width);
  Value mask = cols < n;
  Value row = k.program_id(0).to(DType::kI64) * n.to(DType::kI64);
  Value v = k.load(x + row + cols, mask, 0.0f);
  Value wv = w_first ? k.load(w + cols, mask, 0.0f) : Value();
  Value scale = k.rsqrt(k.sum(v * v, 0) / n.to(DType::kF32) + eps);
  if (!w_first) wv = k.load(w + cols, mask, 0.0f);
  k.store(y + row + cols, v * scale * wv, mask);
}

// ROWS rows per program as one [ROWS, N] tile.
void build_rms_norm_rows(KernelBuilder& k) {
  int64_t rows_per = k.meta("ROWS"), width = k.meta("N");
  Value x = k.pointer_arg("x", DType::kF32);
  Value w = k.pointer_arg("w", DType::kF32);
  Value y = k.pointer_arg("y", DType::kF32);
  Value n = k.scalar_arg("n", DType::kI32);
  Value rows = k.scalar_arg("rows", DType::kI32);
  Value eps = k.scalar_arg("eps", DType::kF32);
  Value r = k.program_id(0) * rows_per + k.arange(0, rows_per);
  Value cols = k.arange(0, width).row();
  Value mask = (r.col() < rows) & (cols < n);
  Value offs = r.col().to(DType::kI64) * n.to(DType::kI64) + cols;
  Value v = k.load(x + offs, mask, 0.0f);
  Value wv = k.load(w + cols, cols < n, 0.0f);
  Value scale = k.rsqrt(k.sum(v * v, 1, true) / n.to(DType::kF32) + eps);
  k.store(y + offs, v * scale * wv, mask);
}

// A fixed number of programs loop over the rows; each loads its next row before reducing the
// current one (software pipelining written in the language) and loads the weight once.
void build_rms_norm_persistent(KernelBuilder& k) {
  int64_t width = k.meta("N");
  Value x = k.pointer_arg("x", DType::kF32);
  Value w = k.pointer_arg("w", DType::kF32);
  Value y = k.pointer_arg("y", DType::kF32);
  Value n = k.scalar_arg("n", DType::kI32);
  Value rows = k.scalar_arg("rows", DType::kI32);
  Value eps = k.scalar_arg("eps", DType::kF32);
  Value cols = k.arange(0, width);
  Value mask = cols < n;
  Value n64 = n.to(DType::kI64);
  Value wv = k.load(w + cols, mask, 0.0f);
  Value pid = k.program_id(0), step = k.num_programs(0);
  Value first = k.load(x + pid.to(DType::kI64) * n64 + cols, mask & (pid < rows), 0.0f);
  k.for_range(pid, rows, step, {first}, [&](Value r, std::vector<Value> carried) {
    Value next = r + step;
    Value ahead = k.load(x + next.to(DType::kI64) * n64 + cols, mask & (next < rows), 0.0f);
    Value v = carried[0];
    Value scale = k.rsqrt(k.sum(v * v, 0) / n.to(DType::kF32) + eps);
    k.store(y + r.to(DType::kI64) * n64 + cols, v * scale * wv, mask);
    return std::vector<Value>{ahead};
  });
}

void build_softmax_rows(KernelBuilder& k) {
  int64_t rows_per = k.meta("ROWS"), width = k.meta("N");
  Value x = k.pointer_arg("x", DType::kF32);
  Value y = k.pointer_arg("y", DType::kF32);
  Value n = k.scalar_arg("n", DType::kI32);
  Value rows = k.scalar_arg("rows", DType::kI32);
  Value r = k.program_id(0) * rows_per + k.arange(0, rows_per);
  Value cols = k.arange(0, width).row();
  Value mask = (r.col() < rows) & (cols < n);
  Value offs = r.col().to(DType::kI64) * n.to(DType::kI64) + cols;
  Value v = k.load(x + offs, mask, -INFINITY);
  Value e = k.exp(v - k.max(v, 1, true));
  k.store(y + offs, e / k.sum(e, 1, true), mask);
}

void build_softmax_persistent(KernelBuilder& k) {
  int64_t width = k.meta("N");
  Value x = k.pointer_arg("x", DType::kF32);
  Value y = k.pointer_arg("y", DType::kF32);
  Value n = k.scalar_arg("n", DType::kI32);
  Value rows = k.scalar_arg("rows", DType::kI32);
  Value cols = k.arange(0, width);
  Value mask = cols < n;
  Value n64 = n.to(DType::kI64);
  Value pid = k.program_id(0), step = k.num_programs(0);
  Value first = k.load(x + pid.to(DType::kI64) * n64 + cols, mask & (pid < rows), -INFINITY);
  k.for_range(pid, rows, step, {first}, [&](Value r, std::vector<Value> carried) {
    Value next = r + step;
    Value ahead = k.load(x + next.to(DType::kI64) * n64 + cols, mask & (next < rows), -INFINITY);
    Value v = carried[0];
    Value e = k.exp(v - k.max(v, 0));
    k.store(y + r.to(DType::kI64) * n64 + cols, e / k.sum(e, 0), mask);
    return std::vector<Value>{ahead};
  });
}

std::vector<Config> with(std::vector<Config> configs, const std::string& key, int64_t value) {
  for (Config& c : configs) c.set(key, value);
  return configs;
}

const Kernel& copy_kernel() {
  static Kernel k(
      "bench_copy", build_copy,
      {Config{{"BLOCK", 4096}, {"num_warps", 8}}, Config{{"BLOCK", 2048}, {"num_warps", 4}},
       Config{{"BLOCK", 8192}, {"num_warps", 8}}, Config{{"BLOCK", 8192}, {"num_warps", 4}}});
  return k;
}
const Kernel& add_kernel() {
  static Kernel k(
      "bench_add", build_add,
      {Config{{"BLOCK", 4096}, {"num_warps", 8}}, Config{{"BLOCK", 2048}, {"num_warps", 4}},
       Config{{"BLOCK", 8192}, {"num_warps", 8}}});
  return k;
}
std::vector<Config> warps(std::vector<int64_t> counts) {
  std::vector<Config> out;
  for (int64_t w : counts) out.push_back(Config{{"num_warps", w}});
  return out;
}
// Candidates of the persistent kernels: PER_SM programs per multiprocessor, with registers
// capped (occupancy) so that they all fit.
std::vector<Config> persistent_configs() {
  return {Config{{"num_warps", 8}, {"PER_SM", 4}, {"occupancy", 4}},
          Config{{"num_warps", 16}, {"PER_SM", 2}, {"occupancy", 2}},
          Config{{"num_warps", 8}, {"PER_SM", 3}, {"occupancy", 3}},
          Config{{"num_warps", 8}, {"PER_SM", 2}, {"occupancy", 2}}};
}

// A row kernel with its candidates and how it is launched: `args` gets (x, w, y, n, rows).
struct RowKernel {
  std::string op;       // softmax or rms_norm
  std::string variant;  // how it is written
  compiler::BuildFn build;
  std::vector<Config> configs;
  enum class Grid { kRow, kRows, kPersistent } grid = Grid::kRow;
};

std::vector<RowKernel> row_kernels(int64_t width, bool all) {
  using G = RowKernel::Grid;
  std::vector<RowKernel> out = {
      {"softmax", "row", build_softmax, with(warps({4, 8, 16}), "N", width), G::kRow},
      {"rms_norm", "row", [](KernelBuilder& k) { build_rms_norm_row(k, true); },
       with(warps({4, 8, 16}), "N", width), G::kRow}};
  if (!all) return out;
  auto occ = [&](int64_t w, int64_t o) {
    return Config{{"N", width}, {"num_warps", w}, {"occupancy", o}};
  };
  // Session 12 window 1 (H200, % of copy): rms_norm with the weight loaded after the reduction
  // 84.5 at 8 warps against 86.7 loaded before it (now the benchmarked kernel); occupancy caps
  // 50-90; ROWS tiles 26-46 (their axis-1 reductions go through shared memory); persistent
  // 68-86. Kept, one or two configs each, so every window re-checks them.
  out.push_back({"softmax", "row+occupancy", build_softmax, {occ(8, 6), occ(8, 8)}, G::kRow});
  out.push_back({"softmax", "rows", build_softmax_rows,
                 with({Config{{"ROWS", 2}, {"num_warps", 16}}}, "N", width), G::kRows});
  out.push_back({"softmax", "persistent", build_softmax_persistent,
                 with({persistent_configs().back()}, "N", width), G::kPersistent});
  out.push_back({"rms_norm", "row w_after", [](KernelBuilder& k) { build_rms_norm_row(k, false); },
                 with(warps({8}), "N", width), G::kRow});
  out.push_back({"rms_norm",
                 "row+occupancy",
                 [](KernelBuilder& k) { build_rms_norm_row(k, true); },
                 {occ(8, 5), occ(16, 3)},
                 G::kRow});
  out.push_back({"rms_norm", "rows", build_rms_norm_rows,
                 with({Config{{"ROWS", 4}, {"num_warps", 16}}}, "N", width), G::kRows});
  out.push_back({"rms_norm", "persistent", build_rms_norm_persistent,
                 with({persistent_configs().back()}, "N", width), G::kPersistent});
  return out;
}

}  // namespace

// One program per row of a contiguous [rows, n] matrix; N (>= n) is the tile width.
void build_softmax(KernelBuilder& k) {
  int64_t width = k.meta("N");
  Value x = k.pointer_arg("x", DType::kF32);
  Value y = k.pointer_arg("y", DType::kF32);
  Value n = k.scalar_arg("n", DType::kI32);
  Value cols = k.arange(0, width);
  Value mask = cols < n;
  Value row = k.program_id(0).to(DType::kI64) * n.to(DType::kI64);
  Value v = k.load(x + row + cols, mask, -INFINITY);
  Value e = k.exp(v - k.max(v, 0));
  k.store(y + row + cols, e / k.sum(e, 0), mask);
}

nlohmann::json bench_memory(const Device& device, const Options& o) {
  Stream stream = Stream::default_stream(device);
  double mib = o.size_mib > 0 ? o.size_mib : is_gpu(device) ? 256 : 16;
  const int64_t width = 4096;  // row length of softmax / rms_norm
  int64_t n = static_cast<int64_t>(mib * 1024 * 1024 / 4) / width * width;
  FS_CHECK(n > 0 && n < INT32_MAX, kInvalidArgument, "bench compiler: --size-mib ", mib, " gives ",
           n, " f32 elements; use 0.02 to 8191");
  int64_t rows = n / width;
  size_t bytes = static_cast<size_t>(n) * 4;
  std::vector<float> hx = random_floats(static_cast<size_t>(n), 1);
  std::vector<float> hw = random_floats(width, 2);
  Tensor x = Tensor::from_vector(hx, {n}, device);
  Tensor y = Tensor::from_vector(random_floats(static_cast<size_t>(n), 3), {n}, device);
  Tensor w = Tensor::from_vector(hw, {width}, device);
  Tensor z = Tensor::empty({n}, DType::kF32, device);

  double copy_ms = median_ms(device, stream, o.repeat, [&] {
    runtime::copy_device_to_device(stream, z.buffer(), 0, x.buffer(), 0, bytes);
  });
  double copy_gbps = 2.0 * bytes / (copy_ms * 1e-3) / 1e9;
  nlohmann::json out = {{"device", device.spec()},
                        {"name", device.info().name},
                        {"bytes_per_tensor", bytes},
                        {"device_copy_gbps", copy_gbps},
                        {"kernels", nlohmann::json::array()}};
  // Bytes moved per run (reads + writes), as the copy figure counts them.
  auto entry = [&](const std::string& name, double ms, const Config& config, double moved,
                   double error) {
    double gbps = moved / (ms * 1e-3) / 1e9;
    return nlohmann::json{{"kernel", name},
                          {"config", config.str()},
                          {"ms", ms},
                          {"gbps", gbps},
                          {"fraction_of_copy", gbps / copy_gbps},
                          {"max_rel_error", error}};
  };
  auto grid1 = [&](const Config& c) { return Grid((n + c.get("BLOCK") - 1) / c.get("BLOCK")); };

  auto best = best_config(device, stream, o.repeat, copy_kernel().configs(), [&](const Config& c) {
    copy_kernel().launch(stream, grid1(c), {x, z, n}, c);
  });
  std::vector<float> got = z.to_vector<float>();
  out["kernels"].push_back(entry("copy", best.first, best.second, 2.0 * bytes, got == hx ? 0 : 1));

  best = best_config(device, stream, o.repeat, add_kernel().configs(), [&](const Config& c) {
    add_kernel().launch(stream, grid1(c), {x, y, z, n}, c);
  });
  {
    std::vector<float> hy = y.to_vector<float>();
    got = z.to_vector<float>();
    double err = 0;
    for (size_t i = 0; i < got.size(); ++i) err = std::max<double>(err, got[i] != hx[i] + hy[i]);
    out["kernels"].push_back(entry("add", best.first, best.second, 3.0 * bytes, err));
  }

  // Row kernels: the error is checked on a sample of rows against a float64 reference.
  auto check_rows = [&](bool softmax) {
    got = z.to_vector<float>();
    std::vector<float> g;
    std::vector<double> want;
    for (int64_t r = 0; r < rows; r += std::max<int64_t>(1, rows / 16)) {
      const float* xr = hx.data() + r * width;
      double mx = -INFINITY, sum = 0, sq = 0;
      for (int64_t i = 0; i < width; ++i) mx = std::max<double>(mx, xr[i]);
      for (int64_t i = 0; i < width; ++i)
        sum += std::exp(double(xr[i]) - mx), sq += double(xr[i]) * xr[i];
      for (int64_t i = 0; i < width; ++i) {
        g.push_back(got[static_cast<size_t>(r * width + i)]);
        want.push_back(softmax ? std::exp(double(xr[i]) - mx) / sum
                               : xr[i] / std::sqrt(sq / width + 1e-6) * hw[i]);
      }
    }
    return max_rel_error(g, want);
  };
  int64_t units = std::max(1, device.info().compute_units);
  nlohmann::json variants = nlohmann::json::array();
  for (const RowKernel& rk : row_kernels(width, o.row_variants)) {
    Kernel kernel("bench_" + rk.op, rk.build, rk.configs);
    // NVRTC builds each candidate on one core: build them side by side first.
    std::vector<std::thread> builders;
    for (const Config& c : kernel.configs())
      builders.emplace_back([&kernel, &device, c] {
        try {
          kernel.compiled(c, device);
        } catch (const Error&) {  // shows again, with its message, when the config is timed
        }
      });
    for (std::thread& t : builders) t.join();
    bool softmax = rk.op == "softmax";
    auto launch = [&](const Config& c) {
      int64_t per = rk.grid == RowKernel::Grid::kRows ? c.get("ROWS") : 1;
      Grid grid = rk.grid == RowKernel::Grid::kPersistent
                      ? Grid(std::min(rows, units * c.get("PER_SM")))
                      : Grid((rows + per - 1) / per);
      std::vector<compiler::Arg> args = {x};
      if (!softmax) args.push_back(w);
      args.push_back(z);
      args.push_back(width);
      if (rk.grid != RowKernel::Grid::kRow) args.push_back(rows);
      if (!softmax) args.push_back(1e-6f);
      kernel.launch(stream, grid, args, c);
    };
    nlohmann::json times = nlohmann::json::array();
    auto b = best_config(device, stream, o.repeat, kernel.configs(), launch, &times);
    // Every config is checked, so that a fast wrong one is seen.
    for (size_t i = 0; i < times.size(); ++i) {
      if (times[i]["ms"].is_null()) continue;
      launch(kernel.configs()[i]);
      nlohmann::json e = entry(rk.op, times[i]["ms"].get<double>(), kernel.configs()[i],
                               2.0 * bytes, check_rows(softmax));
      e["variant"] = rk.variant;
      variants.push_back(e);
    }
    if (rk.variant == "row") {
      launch(b.second);
      out["kernels"].push_back(entry(rk.op, b.first, b.second, 2.0 * bytes, check_rows(softmax)));
    }
  }
  if (o.row_variants) out["row_variants"] = variants;
  return out;
}

}  // namespace flagstone::cli::bench_compiler
