// `flagstone convert` and `flagstone bench model` end to end: a converted GGUF generates what the
// library generates from it, the benchmark's JSON carries every test with sane numbers, and bad
// invocations fail with a message naming the problem.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/generate/cli_runner.h"
#include "engine/model/tiny_models.h"
#include "flagstone/engine/generate/generator.h"

namespace flagstone::engine {
namespace {

using Outcome = testing::CliOutcome;

// A tiny chat model (tokenizer and template included) in a new folder under `parent`.
std::string tiny_model(const std::string& parent) {
  std::filesystem::create_directories(parent + "/tiny");
  return testing::write_tiny_chat_model(parent + "/tiny");
}

Outcome cli(const std::string& args) {
  return testing::run_flagstone(args);
}

TEST(ConvertCli, GgufRunsWithTheLibrarysGreedyTokens) {
  testing::ScratchFolder folder("convert_cli");
  const std::string model = tiny_model(folder.path());
  const std::string gguf = folder.path() + "/tiny-q8_0.gguf";
  Outcome c = cli("convert " + model + " -t q8_0 -o " + gguf + " --json");
  ASSERT_EQ(c.status, 0) << c.err;
  nlohmann::json summary = nlohmann::json::parse(c.out);
  EXPECT_EQ(summary["direction"], "hf-to-gguf");
  EXPECT_EQ(summary["type"], "q8_0");
  EXPECT_EQ(summary["bytes"].get<uint64_t>(), std::filesystem::file_size(gguf));

  // Library greedy generation on the converted file, with its embedded tokenizer.
  auto lib_model = load_model(gguf);
  Tokenizer tokenizer = load_model_tokenizer(gguf);
  Generator generator(*lib_model, &tokenizer);
  GenerationOptions options;
  options.max_new_tokens = 8;
  options.stop_ids = tokenizer.stop_ids();
  const std::string prompt = "Once upon a time";
  GenerationResult want = generator.generate(tokenizer.encode(prompt), options);

  Outcome r = cli("run -m " + gguf + " -p '" + prompt + "' -n 8 --temp 0 --json");
  ASSERT_EQ(r.status, 0) << r.err;
  nlohmann::json out = nlohmann::json::parse(r.out);
  EXPECT_EQ(out["tokens"].get<std::vector<TokenId>>(), want.tokens);
  EXPECT_EQ(out["text"].get<std::string>(), want.text);
  EXPECT_EQ(out["format"], "gguf");

  // Back to a folder, which loads like the file.
  Outcome back = cli("convert " + gguf + " -o " + folder.path() + "/back");
  ASSERT_EQ(back.status, 0) << back.err;
  EXPECT_TRUE(std::filesystem::exists(folder.path() + "/back/model.safetensors"));
  EXPECT_TRUE(std::filesystem::exists(folder.path() + "/back/config.json"));
}

TEST(ConvertCli, BadInvocationsExplainThemselves) {
  testing::ScratchFolder folder("convert_cli_bad");
  const std::string model = tiny_model(folder.path());
  Outcome missing = cli("convert " + folder.path() + "/nope -o x.gguf");
  EXPECT_NE(missing.status, 0);
  EXPECT_NE(missing.err.find("does not exist"), std::string::npos) << missing.err;

  Outcome type = cli("convert " + model + " -t q3_k -o " + folder.path() + "/x.gguf");
  EXPECT_NE(type.status, 0);
  EXPECT_NE(type.err.find("q3_k"), std::string::npos) << type.err;

  const std::string taken = folder.path() + "/taken.gguf";
  std::ofstream(taken) << "x";
  Outcome exists = cli("convert " + model + " -o " + taken);
  EXPECT_NE(exists.status, 0);
  EXPECT_NE(exists.err.find("--force"), std::string::npos) << exists.err;
  EXPECT_EQ(std::filesystem::file_size(taken), 1u);  // untouched
}

TEST(BenchModelCli, SyntheticJsonHasEveryTest) {
  Outcome b = cli("bench model --synthetic tiny -p 8,16 -n 4 -r 2 --json");
  ASSERT_EQ(b.status, 0) << b.err;
  nlohmann::json j = nlohmann::json::parse(b.out);
  EXPECT_EQ(j["architecture"], "llama");
  EXPECT_EQ(j["device"], "cpu:0");
  ASSERT_EQ(j["results"].size(), 3u);
  std::vector<std::string> tests;
  for (const auto& r : j["results"]) {
    tests.push_back(r["test"]);
    EXPECT_EQ(r["samples_ts"].size(), 2u);
    EXPECT_GT(r["avg_ts"].get<double>(), 0.0);
    EXPECT_GE(r["stddev_ts"].get<double>(), 0.0);
    EXPECT_GT(r["bandwidth_fraction"].get<double>(), 0.0);
    EXPECT_GT(r["gemm_fraction"].get<double>(), 0.0);
  }
  EXPECT_EQ(tests, (std::vector<std::string>{"pp8", "pp16", "tg4"}));
  EXPECT_GT(j["peak"]["copy_gbps"].get<double>(), 0.0);
  EXPECT_GT(j["peak"]["gemm_flops"].get<double>(), 0.0);
  // The cpu copy peak moves at least 256 MiB and twice the last-level cache, so it measures
  // memory (unless that would take over a quarter of the host's memory in its two buffers).
  double llc = 0;
#ifdef _SC_LEVEL3_CACHE_SIZE
  llc = static_cast<double>(std::max(0L, sysconf(_SC_LEVEL3_CACHE_SIZE)));
#endif
  const double memory = static_cast<double>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGESIZE);
  const double want = std::min(std::max(256.0 * (1 << 20), 2 * llc), memory / 8 - (1 << 20));
  EXPECT_GE(j["peak"]["copy_bytes"].get<double>(), want);
  // The tiny preset's shapes (2 layers, hidden 64, 4 query and 2 KV heads of 16, MLP 128, vocab
  // 256, untied head), counted here from its definition rather than taken from our output.
  const int64_t h = 64, layers = 2, q = 4 * 16, kv = 2 * 16, ff = 128, vocab = 256;
  const int64_t matmul = layers * (h * (q + 2 * kv) + q * h + 2 * ff * h + ff * h) + vocab * h;
  EXPECT_EQ(j["matmul_parameters"].get<int64_t>(), matmul);
  EXPECT_EQ(j["parameters"].get<int64_t>(), matmul + vocab * h + h + layers * 2 * h);
}

// -d: every test again after that many cached tokens, named as llama-bench names them, with the
// cache's bytes counted into GB/s (a deeper cache reads more per generated token).
TEST(BenchModelCli, DepthRunsEveryTestAfterACachedPrefix) {
  Outcome b = cli("bench model --synthetic tiny -p 8 -n 4 -d 0,32 -r 1 --no-peak --json");
  ASSERT_EQ(b.status, 0) << b.err;
  nlohmann::json j = nlohmann::json::parse(b.out);
  std::vector<std::string> tests;
  std::vector<int64_t> depths;
  for (const auto& r : j["results"]) {
    tests.push_back(r["test"]);
    depths.push_back(r["n_depth"]);
    EXPECT_GT(r["avg_ts"].get<double>(), 0.0);
  }
  EXPECT_EQ(tests, (std::vector<std::string>{"pp8", "tg4", "pp8 @ d32", "tg4 @ d32"}));
  EXPECT_EQ(depths, (std::vector<int64_t>{0, 0, 32, 32}));
  // GB/s per t/s is the bytes one token reads: 32 more cached positions of K and V in each of
  // the tiny preset's 2 layers (2 KV heads of 16, f32 on the cpu).
  auto bytes_per_token = [&](int i) {
    return j["results"][i]["gbps"].get<double>() * 1e9 / j["results"][i]["avg_ts"].get<double>();
  };
  EXPECT_NEAR(bytes_per_token(3) - bytes_per_token(1), 32.0 * 2 * 2 * 2 * 16 * 4, 1.0);

  Outcome bad = cli("bench model --synthetic tiny -d -1");
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.err.find("-d -1"), std::string::npos) << bad.err;
}

TEST(BenchModelCli, ModelFolderAndErrors) {
  testing::ScratchFolder folder("bench_cli");
  const std::string model = tiny_model(folder.path());
  Outcome b = cli("bench model -m " + model + " -p 8 -n 2 -r 1 --no-peak");
  ASSERT_EQ(b.status, 0) << b.err;
  EXPECT_NE(b.out.find("pp8"), std::string::npos) << b.out;
  EXPECT_NE(b.out.find("tg2"), std::string::npos) << b.out;

  Outcome none = cli("bench model -p 8");
  EXPECT_NE(none.status, 0);
  EXPECT_NE(none.err.find("--synthetic"), std::string::npos) << none.err;
  Outcome preset = cli("bench model --synthetic llama-70b");
  EXPECT_NE(preset.status, 0);
  EXPECT_NE(preset.err.find("llama-1b"), std::string::npos) << preset.err;
}

}  // namespace
}  // namespace flagstone::engine
