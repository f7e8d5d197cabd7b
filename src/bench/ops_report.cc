// The report of `flagstone bench ops`: an nccl-tests / llama-bench style table, the JSON form
// (and its reader, so saved runs can be re-rendered), and merging a peer's JSON into the rows.
#include <cstdio>
#include <fstream>
#include <sstream>

#include "flagstone/base/error.h"
#include "flagstone/bench/ops_bench.h"

namespace flagstone::bench {
namespace {

using nlohmann::json;

std::string fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), format, v);
  return buf;
}

// A number column, or "-" right-aligned in the same width when there is no value.
std::string num(int width, int precision, double v) {
  char buf[64];
  if (v > 0)
    std::snprintf(buf, sizeof(buf), "%*.*f", width, precision, v);
  else
    std::snprintf(buf, sizeof(buf), "%*s", width, "-");
  return buf;
}

std::string pad(const std::string& s, int width, bool left = true) {
  char buf[256];
  std::snprintf(buf, sizeof(buf), left ? "%-*s" : "%*s", width, s.c_str());
  return buf;
}

template <typename T>
T field(const json& j, const char* key, std::string_view origin) {
  FS_CHECK(j.is_object(), kFormat, origin, ": expected an object holding '", key, "', got ",
           j.type_name());
  auto it = j.find(key);
  FS_CHECK(it != j.end(), kFormat, origin, ": missing field '", key, "'");
  try {
    return it->get<T>();
  } catch (const json::exception&) {
    throw_error(ErrorCategory::kFormat, origin, ": field '", key, "' has the wrong type (",
                it->type_name(), ")");
  }
}

template <typename T>
T field_or(const json& j, const char* key, T fallback, std::string_view origin) {
  if (!j.is_object() || !j.contains(key) || j.at(key).is_null()) return fallback;
  return field<T>(j, key, origin);
}

const json& array_field(const json& j, const char* key, std::string_view origin) {
  FS_CHECK(j.is_object() && j.contains(key) && j.at(key).is_array(), kFormat, origin,
           ": expected an array '", key, "'");
  return j.at(key);
}

}  // namespace

int merge_peer(OpsBenchReport& report, const json& peer, std::string_view origin) {
  std::string name = field<std::string>(peer, "peer", origin);
  int matched = 0;
  const json& rows = array_field(peer, "rows", origin);
  for (size_t i = 0; i < rows.size(); ++i) {
    std::string where = std::string(origin) + ": rows[" + std::to_string(i) + "]";
    const json& r = rows[i];
    std::string op = field<std::string>(r, "op", where);
    int64_t tokens = field<int64_t>(r, "tokens", where);
    std::string dtype = field<std::string>(r, "dtype", where);
    std::string shape = field<std::string>(r, "shape", where);
    double us = field<double>(r, "kernel_us", where);
    FS_CHECK(us > 0, kFormat, where, ": kernel_us must be positive, got ", us);
    for (OpsBenchRow& row : report.rows) {
      if (row.op != op || row.tokens != tokens || row.dtype != dtype) continue;
      FS_CHECK(row.shape == shape, kInvalidArgument, where, ": op ", op, " at ", tokens,
               " tokens has shape ", shape, " but ours is ", row.shape,
               "; run the peer with the same model dims");
      row.peer = name;
      row.peer_us = us;
      row.peer_ratio = us / row.kernel_us;
      ++matched;
    }
  }
  if (peer.contains("overhead")) {
    const json& over = array_field(peer, "overhead", origin);
    for (size_t i = 0; i < over.size(); ++i) {
      std::string where = std::string(origin) + ": overhead[" + std::to_string(i) + "]";
      std::string op = field<std::string>(over[i], "op", where);
      std::string shape = field<std::string>(over[i], "shape", where);
      double us = field<double>(over[i], "us_per_call", where);
      for (OverheadRow& o : report.overhead)
        if (o.op == op && o.shape == shape) o.peer_us_per_call = us;
    }
  }
  report.peer = name;
  return matched;
}

json peer_json_from_file(const std::string& path) {
  std::ifstream in(path);
  FS_CHECK(in.good(), kIo, "bench ops: cannot open JSON file '", path, "'");
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    throw_error(ErrorCategory::kFormat, "bench ops: file '", path, "' is not JSON: ", e.what());
  }
}

std::string format_table(const OpsBenchReport& r) {
  std::ostringstream out;
  const Peaks& p = r.peaks;
  out << "# flagstone bench ops: " << r.device << " (" << r.device_name << "), dtype " << r.dtype
      << ", " << r.cpu_threads << " cpu threads\n";
  out << "# model dims: hidden " << r.dims.hidden << ", ffn " << r.dims.ffn << ", heads "
      << r.dims.heads << " x " << r.dims.head_dim << ", vocab " << r.dims.vocab << "\n";
  out << "# peak copy " << fmt("%.1f", p.copy_gbps) << " GB/s (" << p.copy_source << ")";
  if (p.stream_gbps > 0) out << ", stream copy " << fmt("%.1f", p.stream_gbps) << " GB/s";
  out << "\n# peak GEMM ";
  if (p.gemm_tflops > 0) out << fmt("%.3f", p.gemm_tflops) << " TFLOP/s (";
  out << p.gemm_source << (p.gemm_tflops > 0 ? ")" : "") << "\n";
  if (!r.peer.empty()) out << "# peer: " << r.peer << "\n";
  bool with_peer = !r.peer.empty();
  out << "# kernel: device events around one call (median); call: ops::call + synchronize, wall\n"
         "# clock; %peak: of the copy peak (memory-bound) or vendor GEMM peak (GEMM, attention);\n"
      << (with_peer ? "# vs_base, vs_peer" : "# vs_base")
      << ": their time / our kernel time (above 1: we are faster)\n";
  out << "#" << pad("op", 13) << pad("tokens", 7, false) << "  " << pad("shape", 18)
      << pad("kernel_us", 11, false) << pad("call_us", 11, false) << pad("GB/s", 9, false)
      << pad("TFLOP/s", 9, false) << pad("%peak", 7, false) << "  " << pad("baseline", 14)
      << pad("base_us", 11, false) << pad("vs_base", 8, false);
  if (with_peer) out << pad("peer_us", 11, false) << pad("vs_peer", 8, false);
  out << "  impl\n";
  // A memory-bound case under twice the last-level cache may run from it, and so may its copy
  // baseline, which then measures the cache rather than memory (STREAM's rule: 4x the caches).
  auto fits_llc = [&](const OpsBenchRow& row) {
    return p.llc_bytes > 0 && row.flops == 0 && row.bytes > 0 && row.bytes < 2 * p.llc_bytes;
  };
  bool any_fits = false;
  for (const OpsBenchRow& row : r.rows) {
    any_fits = any_fits || fits_llc(row);
    out << " " << pad(row.op, 13) << pad(std::to_string(row.tokens), 7, false) << "  "
        << pad(row.shape, 18) << num(11, 2, row.kernel_us) << num(11, 2, row.call_us)
        << num(9, 1, row.flops > 0 ? 0 : row.gbps) << num(9, 3, row.tflops)
        << num(7, 1, 100 * row.peak_fraction) << "  "
        << pad(row.baseline.empty() ? "-" : row.baseline, 14) << num(11, 2, row.baseline_us)
        << num(8, 2, row.baseline_ratio);
    if (with_peer) out << num(11, 2, row.peer_us) << num(8, 2, row.peer_ratio);
    out << "  " << row.impl << (fits_llc(row) ? "  (fits LLC)" : "") << "\n";
  }
  if (any_fits)
    out << "# (fits LLC): moves under twice the " << fmt("%.0f", p.llc_bytes / 1048576)
        << " MiB last-level cache, so the case and its copy baseline\n"
           "# may run from cache; --sizes large enough to move 4x the cache compare against "
           "memory\n";
  if (!r.overhead.empty()) {
    out << "#\n# host overhead per call: 1 token at tiny dims (hidden 128), "
        << r.overhead.front().calls << " calls back to back, then one synchronize\n";
    out << "#" << pad("op", 13) << "  " << pad("shape", 18) << pad("us/call", 10, false);
    if (with_peer) out << pad("peer_us/call", 14, false);
    out << "\n";
    for (const OverheadRow& o : r.overhead) {
      out << " " << pad(o.op, 13) << "  " << pad(o.shape, 18) << num(10, 2, o.us_per_call);
      if (with_peer) out << num(14, 2, o.peer_us_per_call);
      out << "\n";
    }
  }
  return out.str();
}

json to_json(const OpsBenchReport& r) {
  json rows = json::array();
  for (const OpsBenchRow& row : r.rows) {
    json j = {{"op", row.op},
              {"tokens", row.tokens},
              {"shape", row.shape},
              {"dtype", row.dtype},
              {"impl", row.impl},
              {"bytes", row.bytes},
              {"flops", row.flops},
              {"reps", row.reps},
              {"kernel_us", row.kernel_us},
              {"call_us", row.call_us},
              {"gbps", row.gbps},
              {"tflops", row.tflops},
              {"peak_fraction", row.peak_fraction}};
    if (!row.baseline.empty())
      j.update({{"baseline", row.baseline},
                {"baseline_us", row.baseline_us},
                {"baseline_ratio", row.baseline_ratio}});
    if (!row.peer.empty())
      j.update({{"peer", row.peer}, {"peer_us", row.peer_us}, {"peer_ratio", row.peer_ratio}});
    rows.push_back(std::move(j));
  }
  json overhead = json::array();
  for (const OverheadRow& o : r.overhead) {
    json j = {{"op", o.op}, {"shape", o.shape}, {"calls", o.calls}, {"us_per_call", o.us_per_call}};
    if (o.peer_us_per_call > 0) j["peer_us_per_call"] = o.peer_us_per_call;
    overhead.push_back(std::move(j));
  }
  json out = {{"device", r.device},
              {"device_name", r.device_name},
              {"dtype", r.dtype},
              {"cpu_threads", r.cpu_threads},
              {"dims",
               {{"hidden", r.dims.hidden},
                {"ffn", r.dims.ffn},
                {"heads", r.dims.heads},
                {"head_dim", r.dims.head_dim},
                {"vocab", r.dims.vocab}}},
              {"peaks",
               {{"copy_gbps", r.peaks.copy_gbps},
                {"copy_source", r.peaks.copy_source},
                {"stream_gbps", r.peaks.stream_gbps},
                {"gemm_tflops", r.peaks.gemm_tflops},
                {"gemm_source", r.peaks.gemm_source},
                {"llc_bytes", r.peaks.llc_bytes}}},
              {"rows", rows},
              {"overhead", overhead}};
  if (!r.peer.empty()) out["peer"] = r.peer;
  return out;
}

OpsBenchReport report_from_json(const json& j, std::string_view origin) {
  OpsBenchReport r;
  r.device = field<std::string>(j, "device", origin);
  r.device_name = field_or<std::string>(j, "device_name", "", origin);
  r.dtype = field<std::string>(j, "dtype", origin);
  r.cpu_threads = field_or<int>(j, "cpu_threads", 0, origin);
  r.peer = field_or<std::string>(j, "peer", "", origin);
  if (j.contains("dims")) {
    const json& d = j.at("dims");
    std::string where = std::string(origin) + ": dims";
    r.dims = {field<int64_t>(d, "hidden", where), field<int64_t>(d, "ffn", where),
              field<int64_t>(d, "heads", where), field<int64_t>(d, "head_dim", where),
              field<int64_t>(d, "vocab", where)};
  }
  if (j.contains("peaks")) {
    const json& p = j.at("peaks");
    std::string where = std::string(origin) + ": peaks";
    r.peaks = {field_or<double>(p, "copy_gbps", 0, where),
               field_or<std::string>(p, "copy_source", "", where),
               field_or<double>(p, "stream_gbps", 0, where),
               field_or<double>(p, "gemm_tflops", 0, where),
               field_or<std::string>(p, "gemm_source", "", where),
               field_or<double>(p, "llc_bytes", 0, where)};
  }
  const json& rows = array_field(j, "rows", origin);
  for (size_t i = 0; i < rows.size(); ++i) {
    std::string where = std::string(origin) + ": rows[" + std::to_string(i) + "]";
    const json& x = rows[i];
    OpsBenchRow row;
    row.op = field<std::string>(x, "op", where);
    row.tokens = field<int64_t>(x, "tokens", where);
    row.shape = field<std::string>(x, "shape", where);
    row.dtype = field<std::string>(x, "dtype", where);
    row.impl = field_or<std::string>(x, "impl", "", where);
    row.bytes = field_or<double>(x, "bytes", 0, where);
    row.flops = field_or<double>(x, "flops", 0, where);
    row.reps = field_or<int>(x, "reps", 0, where);
    row.kernel_us = field<double>(x, "kernel_us", where);
    row.call_us = field_or<double>(x, "call_us", 0, where);
    row.gbps = field_or<double>(x, "gbps", 0, where);
    row.tflops = field_or<double>(x, "tflops", 0, where);
    row.peak_fraction = field_or<double>(x, "peak_fraction", 0, where);
    row.baseline = field_or<std::string>(x, "baseline", "", where);
    row.baseline_us = field_or<double>(x, "baseline_us", 0, where);
    row.baseline_ratio = field_or<double>(x, "baseline_ratio", 0, where);
    row.peer = field_or<std::string>(x, "peer", "", where);
    row.peer_us = field_or<double>(x, "peer_us", 0, where);
    row.peer_ratio = field_or<double>(x, "peer_ratio", 0, where);
    r.rows.push_back(std::move(row));
  }
  if (j.contains("overhead")) {
    const json& over = array_field(j, "overhead", origin);
    for (size_t i = 0; i < over.size(); ++i) {
      std::string where = std::string(origin) + ": overhead[" + std::to_string(i) + "]";
      r.overhead.push_back(
          {field<std::string>(over[i], "op", where), field<std::string>(over[i], "shape", where),
           field_or<int>(over[i], "calls", 0, where), field<double>(over[i], "us_per_call", where),
           field_or<double>(over[i], "peer_us_per_call", 0, where)});
    }
  }
  return r;
}

}  // namespace flagstone::bench
