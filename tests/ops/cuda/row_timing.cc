// Times the cuda row kernels (softmax, rms_norm, layer_norm, rotary, cross_entropy; add and mul)
// on the shapes of `flagstone bench ops`, once per kernel variant (FLAGSTONE_CUDA_VARIANT), after
// checking each variant against the cpu implementation. A tuning tool for the GPU windows, not a
// test: it asserts nothing about speed and prints one line per (op, dtype, tokens, variant).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "cuda/kernels.h"
#include "ops/ops_test_util.h"

namespace {

using namespace flagstone;
using namespace flagstone::ops;

struct Case {
  std::vector<Tensor> inputs;
  Attrs attrs;
  double bytes = 0;
  int64_t reduction = 1;  // length the tolerance scales with
};

constexpr int64_t kHidden = 4096, kHeads = 32, kHeadDim = 128, kVocab = 32000, kFfn = 11008;

Case make(const std::string& op, int64_t t, DType dt, const Device& dev, int64_t n = 0) {
  Case c;
  double es = static_cast<double>(dtype_size(dt)), T = static_cast<double>(t);
  uint64_t seed = 7;
  auto randn = [&](const Shape& s) { return ops::randn(s, seed++, 0, dt, dev); };
  if (op == "silu_and_mul") {
    n = n ? n : kFfn;
    c.inputs = {randn({t, 2 * n})};
    c.bytes = 3 * T * static_cast<double>(n) * es;
  } else if (op == "add" || op == "mul") {
    n = n ? n : kHidden;
    c.inputs = {randn({t, n}), randn({t, n})};
    c.bytes = 3 * T * static_cast<double>(n) * es;
  } else if (op == "softmax") {
    n = n ? n : kVocab;
    c.inputs = {randn({t, n})};
    c.attrs.set("dim", int64_t{-1});
    c.bytes = 2 * T * static_cast<double>(n) * es;
    c.reduction = n;
  } else if (op == "rms_norm") {
    n = n ? n : kHidden;
    c.inputs = {randn({t, n}), randn({n})};
    c.attrs.set("eps", 1e-6);
    c.bytes = (2 * T + 1) * static_cast<double>(n) * es;
    c.reduction = n;
  } else if (op == "layer_norm") {
    n = n ? n : kHidden;
    c.inputs = {randn({t, n}), randn({n}), randn({n})};
    c.attrs.set("eps", 1e-5).set("normalized_ndim", int64_t{1});
    c.bytes = (2 * T + 2) * static_cast<double>(n) * es;
    c.reduction = n;
  } else if (op == "rotary_embedding") {
    int64_t heads = n ? n : kHeads;
    auto [cos, sin] = ops::rope_cache(t, kHeadDim, 10000.0, {}, dt, dev);
    c.inputs = {randn({t, heads, kHeadDim}), ops::arange(t, dev), cos, sin};
    c.attrs.set("style", "neox");
    c.bytes = 2 * T * static_cast<double>(heads * kHeadDim) * es + T * kHeadDim * es + 8 * T;
  } else {
    n = n ? n : kVocab;
    c.inputs = {randn({t, n}), ops::randint(0, n, {t}, seed++, 0, DType::kI64, dev)};
    c.attrs.set("reduction", "mean");
    c.bytes = T * static_cast<double>(n) * es + 8 * T;
    c.reduction = n * t;
  }
  dev.synchronize();
  return c;
}

// Variant 0 of this tool is each op's default (the launchers' own variant 0 is their first
// kernel, which FLAGSTONE_CUDA_VARIANT=0 selects).
void set_variant(int v) {
  ops::cuda::set_tuning_variant(v <= 0 ? -1 : v);
}

// Median of single-call times with device events, enqueued back to back as `flagstone bench ops`
// does (the host runs ahead, so each start event waits behind the previous call, not the host).
double median_us(const Device& dev, const std::function<void()>& fn, int reps = 15) {
  for (int i = 0; i < 3; ++i) fn();
  Stream stream = Stream::default_stream(dev);
  stream.synchronize();
  std::vector<std::pair<runtime::Event, runtime::Event>> events;
  for (int i = 0; i < reps; ++i) {
    events.emplace_back(runtime::Event(dev), runtime::Event(dev));
    events.back().first.record(stream);
    fn();
    events.back().second.record(stream);
  }
  stream.synchronize();
  std::vector<double> t;
  for (auto& [a, b] : events) t.push_back(1e3 * a.elapsed_ms(b));
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// Empty when the current variant matches the cpu implementation on a row of the bench's length
// and on an odd one (a tail of packs the threads do not divide evenly), for the op and the
// related ops its kernels serve (log_softmax, add_rms_norm, gpt-j rotary, per-row smoothed
// cross entropy); every output is compared.
std::string check(const std::string& op, DType dt, const Device& dev, const Device& cpu) {
  int64_t odd = op == "rotary_embedding"                   ? 8
                : op == "softmax" || op == "cross_entropy" ? 1000
                                                           : 4104;
  for (int64_t n : {int64_t{0}, odd}) {
    Case c = make(op, 37, dt, dev, n);
    std::vector<std::pair<std::string, Case>> runs{{op, c}};
    if (op == "softmax") runs.push_back({"log_softmax", c});
    if (op == "rms_norm") {
      Case f = c;
      f.inputs = {c.inputs[0], ops::randn(c.inputs[0].shape(), 99, 0, dt, dev), c.inputs[1]};
      runs.push_back({"add_rms_norm", f});
    }
    if (op == "rotary_embedding") {
      Case g = c;
      g.attrs.set("style", "gptj");
      runs.push_back({op, g});
    }
    if (op == "cross_entropy") {
      Case r = c;
      r.attrs.set("reduction", "none").set("label_smoothing", 0.1);
      r.reduction = c.inputs[0].shape().back();
      runs.push_back({op, r});
    }
    for (auto& [name, k] : runs) {
      std::vector<Tensor> host;
      for (const Tensor& x : k.inputs) host.push_back(x.to(cpu));
      std::vector<Tensor> want = call(name, host, k.attrs);
      std::vector<Tensor> got = call(name, k.inputs, k.attrs);
      for (size_t i = 0; i < want.size(); ++i) {
        std::string diff =
            testing::compare(got[i].to(cpu), want[i], testing::tolerance(dt, k.reduction));
        if (!diff.empty()) return name + " output " + std::to_string(i) + ": " + diff;
      }
    }
  }
  return {};
}

}  // namespace

int main(int argc, char** argv) {
  try {
    auto devices = runtime::devices_of("cuda");
    if (devices.empty()) {
      std::printf("no CUDA device\n");
      return 0;
    }
    const Device& dev = devices[0];
    Device cpu = Device::get("cpu");
    std::string only = argc > 1 ? argv[1] : "";
    // The copy peak as `flagstone bench ops` measures it: 1 GiB device copy, read + write.
    size_t bytes = size_t{1} << 30;
    runtime::Buffer a = runtime::Buffer::allocate(dev, bytes),
                    b = runtime::Buffer::allocate(dev, bytes);
    Stream stream = Stream::default_stream(dev);
    runtime::fill_bytes(stream, a, 0, bytes, 1);
    double copy_us = median_us(
        dev, [&] { runtime::copy_device_to_device(stream, b, 0, a, 0, bytes); }, 5);
    double peak = 2.0 * static_cast<double>(bytes) / (copy_us * 1e3);
    std::printf("# %s: copy peak %.1f GB/s\n", dev.info().name.c_str(), peak);
    std::printf("#%-17s %-5s %6s %3s %10s %8s %6s %8s  %s\n", "op", "dtype", "tokens", "var",
                "kernel_us", "GB/s", "%copy", "vs_var0", "check");
    // The variants worth timing (0: the op's default); the launchers name them.
    struct Op {
      std::string name;
      std::vector<int> variants;
    };
    std::vector<Op> ops_list = {{"layer_norm", {0, 3, 5, 7, 8, 9}},
                                {"cross_entropy", {0, 1, 5, 6, 7, 8}},
                                {"softmax", {0, 3, 4, 5, 6, 7, 8}},
                                {"rms_norm", {0, 4, 5, 7, 8, 9}},
                                {"silu_and_mul", {0, 1, 2, 3}},
                                {"rotary_embedding", {0, 1, 4, 5, 6}},
                                {"add", {0, 1}},
                                {"mul", {0, 1}}};
    struct Combo {
      DType dt;
      int64_t tokens;
    };
    // The bench's dtype and large size first, so a time limit still leaves the main numbers.
    for (Combo combo : {Combo{DType::kBF16, 8192}, Combo{DType::kF16, 8192},
                        Combo{DType::kF32, 8192}, Combo{DType::kBF16, 1024}}) {
      const DType dt = combo.dt;
      const int64_t tokens = combo.tokens;
      for (const Op& op : ops_list) {
        if (!only.empty() && only != op.name) continue;
        Case c = make(op.name, tokens, dt, dev);
        double base = 0, best = 0;
        int best_v = -1;
        for (int v : op.variants) {
          set_variant(v);
          try {
            std::string diff = tokens == 8192 ? check(op.name, dt, dev, cpu) : "";
            double us = median_us(dev, [&] { call(op.name, c.inputs, c.attrs); });
            if (v == 0) base = us;
            if (diff.empty() && (best_v < 0 || us < best)) best = us, best_v = v;
            double gbps = c.bytes / (us * 1e3);
            std::printf(" %-17s %-5s %6lld %3d %10.2f %8.1f %6.1f %8.3f  %s\n", op.name.c_str(),
                        dtype_name(dt).data(), static_cast<long long>(tokens), v, us, gbps,
                        100 * gbps / peak, base / us, diff.empty() ? "ok" : diff.c_str());
          } catch (const std::exception& e) {
            std::printf(" %-17s %-5s %6lld %3d error: %s\n", op.name.c_str(), dtype_name(dt).data(),
                        static_cast<long long>(tokens), v, e.what());
          }
          std::fflush(stdout);
        }
        set_variant(0);
        if (best_v >= 0)
          std::printf("#best %s %s %lld: variant %d, %.2f us, %.1f%% of copy, %.3fx variant 0\n",
                      op.name.c_str(), dtype_name(dt).data(), static_cast<long long>(tokens),
                      best_v, best, 100 * c.bytes / (best * 1e3) / peak, base / best);
      }
    }
  } catch (const std::exception& e) {
    std::printf("error: %s\n", e.what());
    return 1;
  }
  return 0;
}
