// Tests of the operator benchmark: option parsing and its errors, the byte/flop model of each case
// (checked against counts worked out by hand), the JSON report and peer merging, and a tiny run
// on every device that checks each row was measured and names what served it.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "flagstone/base/error.h"
#include "flagstone/bench/ops_bench.h"
#include "flagstone/runtime/device.h"

namespace flagstone::bench {
namespace {

template <typename Fn>
std::string error_of(Fn&& fn, ErrorCategory want) {
  try {
    fn();
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), want) << e.what();
    return e.message();
  }
  ADD_FAILURE() << "no error thrown";
  return "";
}

TEST(BenchOpsParse, Sizes) {
  EXPECT_EQ(parse_sizes("1,512,8k"), (std::vector<int64_t>{1, 512, 8192}));
  EXPECT_EQ(parse_sizes(" 4K "), (std::vector<int64_t>{4096}));
  for (const char* bad : {"", "abc", "0", "5x", "-3", "1,,2", "99999999999"}) {
    std::string msg = error_of([&] { parse_sizes(bad); }, ErrorCategory::kInvalidArgument);
    EXPECT_NE(msg.find("size"), std::string::npos) << bad << ": " << msg;
  }
  EXPECT_NE(error_of([] { parse_sizes("12q"); }, ErrorCategory::kInvalidArgument).find("'12q'"),
            std::string::npos);
}

TEST(BenchOpsParse, OpList) {
  EXPECT_EQ(parse_op_list("add, mul,add"), (std::vector<std::string>{"add", "mul"}));
  EXPECT_EQ(parse_op_list("rotary_embedding,sdpa"),
            (std::vector<std::string>{"rotary", "attention"}));
  EXPECT_EQ(parse_op_list("all"), bench_op_names());
  EXPECT_EQ(registry_op_of("attention"), "scaled_dot_product_attention");
  std::string msg = error_of([] { parse_op_list("add,softmx"); }, ErrorCategory::kInvalidArgument);
  EXPECT_NE(msg.find("'softmx'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("softmax"), std::string::npos) << msg;  // lists the known ops
}

TEST(BenchOpsCases, BytesAndFlopsByHand) {
  ModelDims d{8, 12, 2, 4, 10};  // hidden, ffn, heads, head_dim, vocab
  // add at 3 tokens, f32: a, b read and out written, 3 x 8 each, 4 bytes.
  OpsBenchRow add = describe_case("add", 3, d, "f32");
  EXPECT_EQ(add.shape, "3x8");
  EXPECT_DOUBLE_EQ(add.bytes, 3.0 * 3 * 8 * 4);
  EXPECT_DOUBLE_EQ(add.flops, 0);
  // silu_and_mul on [3, 24] bf16: 72 read, 36 written, 2 bytes each.
  OpsBenchRow silu = describe_case("silu_and_mul", 3, d, "bf16");
  EXPECT_EQ(silu.shape, "3x24");
  EXPECT_DOUBLE_EQ(silu.bytes, (72 + 36) * 2.0);
  // rms_norm reads x and the weight, writes y.
  EXPECT_DOUBLE_EQ(describe_case("rms_norm", 3, d, "f16").bytes, (24 + 8 + 24) * 2.0);
  EXPECT_DOUBLE_EQ(describe_case("layer_norm", 3, d, "f32").bytes, (24 + 16 + 24) * 4.0);
  EXPECT_DOUBLE_EQ(describe_case("softmax", 3, d, "f32").bytes, 2 * 30 * 4.0);
  // cross_entropy reads the logits and i64 targets.
  EXPECT_DOUBLE_EQ(describe_case("cross_entropy", 3, d, "f32").bytes, 30 * 4.0 + 3 * 8);
  // rotary: x [3, 2, 4] read and written, cos+sin rows of 2 each per token, positions.
  OpsBenchRow rope = describe_case("rotary", 3, d, "f32");
  EXPECT_EQ(rope.shape, "3x2x4");
  EXPECT_DOUBLE_EQ(rope.bytes, (24 + 24 + 3 * 4) * 4.0 + 24);
  // mm [3, 8] x [8, 8]: 3*8 multiply-adds per output column.
  OpsBenchRow mm = describe_case("mm", 3, d, "f32");
  EXPECT_EQ(mm.shape, "3x8x8");
  EXPECT_DOUBLE_EQ(mm.flops, 2.0 * 3 * 8 * 8);
  EXPECT_DOUBLE_EQ(describe_case("linear", 3, d, "f32").flops, 2.0 * 3 * 8 * 12);
  // Causal attention over 3 tokens: QK^T and PV on half of the 3x3 score matrix, per head.
  OpsBenchRow att = describe_case("attention", 3, d, "bf16");
  EXPECT_EQ(att.shape, "1x2x3x4");
  EXPECT_DOUBLE_EQ(att.flops, 2 * (2.0 * 3 * 3 * 4) / 2 * 2);
  error_of([&] { describe_case("add", 0, d, "f32"); }, ErrorCategory::kInvalidArgument);
  ModelDims odd = d;
  odd.head_dim = 3;
  std::string msg =
      error_of([&] { describe_case("rotary", 2, odd, "f32"); }, ErrorCategory::kInvalidArgument);
  EXPECT_NE(msg.find("head_dim=3"), std::string::npos) << msg;
}

OpsBenchReport sample_report() {
  OpsBenchReport r;
  r.device = "cpu:0";
  r.device_name = "test cpu";
  r.dtype = "f32";
  r.cpu_threads = 2;
  r.peaks = {20.0, "runtime copy", 25.0, 0.5, "openblas sgemm 64^3"};
  OpsBenchRow add = describe_case("add", 4, r.dims, "f32");
  add.impl = "cpu/native/add";
  add.kernel_us = 100;
  add.call_us = 110;
  add.baseline = "stream-copy";
  add.baseline_us = 80;
  add.baseline_ratio = 0.8;
  OpsBenchRow mm = describe_case("mm", 4, r.dims, "f32");
  mm.impl = "cpu/vendor/mm";
  mm.kernel_us = 50;
  r.rows = {add, mm};
  r.overhead = {{"add", "1x128", 100, 2.5, 0}};
  return r;
}

TEST(BenchOpsReport, JsonRoundTripAndTable) {
  OpsBenchReport r = sample_report();
  OpsBenchReport back = report_from_json(to_json(r), "test");
  ASSERT_EQ(back.rows.size(), 2u);
  EXPECT_EQ(back.rows[0].shape, r.rows[0].shape);
  EXPECT_EQ(back.rows[0].baseline, "stream-copy");
  EXPECT_DOUBLE_EQ(back.rows[1].flops, r.rows[1].flops);
  EXPECT_DOUBLE_EQ(back.peaks.stream_gbps, 25.0);
  EXPECT_EQ(back.overhead.at(0).shape, "1x128");
  std::string table = format_table(back);
  EXPECT_NE(table.find("# flagstone bench ops: cpu:0 (test cpu)"), std::string::npos) << table;
  EXPECT_NE(table.find("cpu/vendor/mm"), std::string::npos);
  EXPECT_NE(table.find("host overhead"), std::string::npos);
  EXPECT_EQ(table.find("vs_peer"), std::string::npos);  // no peer merged yet
  std::string msg = error_of(
      [] {
        report_from_json({{"device", "cpu"}}, "saved.json");
      },
      ErrorCategory::kFormat);
  EXPECT_NE(msg.find("saved.json"), std::string::npos) << msg;
}

// A memory-bound row under twice the last-level cache is marked (its copy baseline may run from
// cache); a GEMM row and a row past the bound are not, and a report without the cache size marks
// nothing. The size survives the JSON round trip.
TEST(BenchOpsReport, MarksRowsThatFitTheLastLevelCache) {
  OpsBenchReport r = sample_report();
  const double add_bytes = r.rows[0].bytes;
  ASSERT_GT(add_bytes, 0);
  r.peaks.llc_bytes = add_bytes;  // the add moves 1x the cache: fits
  OpsBenchReport back = report_from_json(to_json(r), "test");
  EXPECT_DOUBLE_EQ(back.peaks.llc_bytes, add_bytes);
  auto line_of = [](const std::string& table, const std::string& impl) {
    size_t at = table.find(impl);
    return at == std::string::npos ? std::string() : table.substr(at, table.find('\n', at) - at);
  };
  std::string table = format_table(back);
  EXPECT_NE(line_of(table, "cpu/native/add").find("(fits LLC)"), std::string::npos) << table;
  EXPECT_EQ(line_of(table, "cpu/vendor/mm").find("(fits LLC)"), std::string::npos) << table;
  EXPECT_NE(table.find("# (fits LLC): moves under twice the"), std::string::npos);
  back.peaks.llc_bytes = add_bytes / 2;  // exactly twice the cache: memory-bound, no mark
  table = format_table(back);
  EXPECT_EQ(table.find("(fits LLC)"), std::string::npos) << table;
  back.peaks.llc_bytes = 0;
  EXPECT_EQ(format_table(back).find("(fits LLC)"), std::string::npos);
}

TEST(BenchOpsReport, MergePeer) {
  OpsBenchReport r = sample_report();
  nlohmann::json peer = {{"peer", "torch test"},
                         {"rows",
                          {{{"op", "add"},
                            {"tokens", 4},
                            {"shape", r.rows[0].shape},
                            {"dtype", "f32"},
                            {"kernel_us", 150.0}},
                           {{"op", "softmax"},
                            {"tokens", 4},
                            {"shape", "4x32000"},
                            {"dtype", "f32"},
                            {"kernel_us", 1.0}}}},
                         {"overhead", {{{"op", "add"}, {"shape", "1x128"}, {"us_per_call", 9.0}}}}};
  EXPECT_EQ(merge_peer(r, peer, "peer.json"), 1);
  EXPECT_DOUBLE_EQ(r.rows[0].peer_ratio, 1.5);
  EXPECT_EQ(r.rows[1].peer_us, 0);
  EXPECT_DOUBLE_EQ(r.overhead[0].peer_us_per_call, 9.0);
  EXPECT_NE(format_table(r).find("vs_peer"), std::string::npos);

  nlohmann::json wrong_shape = peer;
  wrong_shape["rows"][0]["shape"] = "4x999";
  std::string msg =
      error_of([&] { merge_peer(r, wrong_shape, "peer.json"); }, ErrorCategory::kInvalidArgument);
  EXPECT_NE(msg.find("4x999"), std::string::npos) << msg;
  nlohmann::json bad_type = peer;
  bad_type["rows"][0]["kernel_us"] = "fast";
  msg = error_of([&] { merge_peer(r, bad_type, "peer.json"); }, ErrorCategory::kFormat);
  EXPECT_NE(msg.find("peer.json: rows[0]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("kernel_us"), std::string::npos) << msg;
  error_of([&] { merge_peer(r, nlohmann::json::array(), "peer.json"); }, ErrorCategory::kFormat);
  error_of([] { peer_json_from_file("/nonexistent/peer.json"); }, ErrorCategory::kIo);
  std::string path = ::testing::TempDir() + "/bench_ops_not_json.json";
  std::ofstream(path) << "{not json";
  msg = error_of([&] { peer_json_from_file(path); }, ErrorCategory::kFormat);
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
}

TEST(BenchOpsRun, BadConfigNamesTheCulprit) {
  OpsBenchConfig cfg;
  cfg.device = "nosuchdevice:3";
  error_of([&] { run_ops_bench(cfg); }, ErrorCategory::kNotFound);
  cfg.device = "cpu";
  cfg.dtype = "i32";
  std::string msg = error_of([&] { run_ops_bench(cfg); }, ErrorCategory::kInvalidArgument);
  EXPECT_NE(msg.find("i32"), std::string::npos) << msg;
}

// Every op at 2 tokens of tiny model dims on every device: each row measured, counted and
// attributed to an implementation.
TEST(BenchOpsRun, TinyRunOnEveryDevice) {
  for (const runtime::Device& device : runtime::all_devices()) {
    SCOPED_TRACE(device.spec());
    OpsBenchConfig cfg;
    cfg.device = device.spec();
    cfg.sizes = {2};
    cfg.dims = {16, 24, 2, 8, 40};
    cfg.reps = 3;
    cfg.warmup = 1;
    cfg.max_seconds = 0.01;
    cfg.overhead_calls = 3;
    cfg.copy_mib = 0.25;
    cfg.gemm_size = 32;
    int lines = 0;
    OpsBenchReport r = run_ops_bench(cfg, [&](const std::string&) { ++lines; });
    EXPECT_GT(lines, 0);
    EXPECT_EQ(r.device, device.spec());
    // A cpu (the cpu backend, or an OpenCL driver on the host such as PoCL) measures f32 by
    // default, a GPU bf16.
    EXPECT_EQ(r.dtype, device.info().type == runtime::DeviceType::kCpu ? "f32" : "bf16");
    EXPECT_GT(r.peaks.copy_gbps, 0);
    ASSERT_EQ(r.rows.size(), bench_op_names().size());
    for (const OpsBenchRow& row : r.rows) {
      SCOPED_TRACE(row.op);
      EXPECT_GE(row.reps, 3);
      EXPECT_GT(row.kernel_us, 0);
      EXPECT_GT(row.call_us, 0);
      EXPECT_NE(row.impl, "none");
      EXPECT_FALSE(row.impl.empty());
      EXPECT_GT(row.bytes, 0);
      if (row.flops == 0) {
        EXPECT_FALSE(row.baseline.empty());  // a copy of the same bytes
        EXPECT_GT(row.baseline_us, 0);
      }
    }
    EXPECT_EQ(r.overhead.size(), bench_op_names().size());
    EXPECT_EQ(report_from_json(to_json(r), "run").rows.size(), r.rows.size());
  }
}

}  // namespace
}  // namespace flagstone::bench
