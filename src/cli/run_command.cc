// `flagstone run`: load a model (Hugging Face folder or GGUF file) onto a device and generate
// text for a prompt, or chat interactively; streamed text on stdout, statistics on stderr.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>

#include "commands.h"
#include "flagstone/engine/generate/generator.h"
#include "flagstone/engine/model/model.h"
#include "flagstone/engine/tokenizer/chat_template.h"

namespace flagstone::cli {
namespace {

using engine::GenerationOptions;
using engine::GenerationResult;
using engine::TokenId;

struct RunOptions {
  std::string model;
  std::string prompt;
  std::string system;
  std::string device = "cpu";
  std::string dtype;
  int64_t max_new_tokens = 256;
  int64_t context = 0;
  bool chat = false;
  bool json = false;
  bool verbose = false;
  bool ignore_eos = false;
  bool no_graph = false;
  std::optional<double> temperature, top_p, min_p, repetition_penalty;
  std::optional<int64_t> top_k;
  std::optional<uint64_t> seed;
  std::vector<std::string> stop;
};

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// A one-line bar on stderr, redrawn in place; only on a terminal, where it helps.
void draw_progress(const engine::LoadProgress& p) {
  const int width = 30;
  double fraction = p.bytes_total ? static_cast<double>(p.bytes_done) / p.bytes_total : 1.0;
  int filled = static_cast<int>(fraction * width);
  std::fprintf(stderr, "\rloading [%.*s%*s] %3d%%  %.0f/%.0f MiB  %zu/%zu tensors", filled,
               "##############################", width - filled, "",
               static_cast<int>(fraction * 100), p.bytes_done / 1048576.0,
               p.bytes_total / 1048576.0, p.tensors_done, p.tensors_total);
  if (p.tensors_done == p.tensors_total) std::fprintf(stderr, "\n");
  std::fflush(stderr);
}

// Explicit flags win; then the model's generation_config.json when it asks for sampling;
// otherwise llama.cpp's defaults.
engine::SamplingOptions resolve_sampling(const RunOptions& o, const engine::ModelConfig& config,
                                         uint64_t seed) {
  engine::SamplingOptions s;
  const engine::GenerationDefaults& g = config.generation;
  if (g.do_sample) {
    s.temperature = g.temperature.value_or(1.0);
    s.top_k = g.top_k.value_or(50);
    s.top_p = g.top_p.value_or(1.0);
    s.min_p = g.min_p.value_or(0.0);
  } else {
    s.temperature = 0.8;
    s.top_k = 40;
    s.top_p = 0.95;
    s.min_p = 0.05;
  }
  if (g.repetition_penalty) s.repetition_penalty = *g.repetition_penalty;
  if (o.temperature) s.temperature = *o.temperature;
  if (o.top_k) s.top_k = *o.top_k;
  if (o.top_p) s.top_p = *o.top_p;
  if (o.min_p) s.min_p = *o.min_p;
  if (o.repetition_penalty) s.repetition_penalty = *o.repetition_penalty;
  s.seed = seed;
  s.validate();
  return s;
}

nlohmann::json result_json(const GenerationResult& r) {
  auto rate = [](int64_t n, double s) { return s > 0 ? n / s : 0.0; };
  return {{"text", r.text},
          {"tokens", r.tokens},
          {"finish_reason", r.finish_reason},
          {"prompt_tokens", r.stats.prompt_tokens},
          {"reused_tokens", r.stats.reused_tokens},
          {"generated_tokens", r.stats.generated_tokens},
          {"prefill_seconds", r.stats.prefill_seconds},
          {"decode_seconds", r.stats.decode_seconds},
          {"prefill_tokens_per_second",
           rate(r.stats.prompt_tokens - r.stats.reused_tokens, r.stats.prefill_seconds)},
          {"decode_tokens_per_second", rate(r.stats.generated_tokens - 1, r.stats.decode_seconds)}};
}

void print_stats(const GenerationResult& r) {
  int64_t fresh = r.stats.prompt_tokens - r.stats.reused_tokens;
  std::fprintf(stderr, "\n[prompt %lld tokens (%lld new) in %.3f s, %.1f tok/s | generated %lld",
               static_cast<long long>(r.stats.prompt_tokens), static_cast<long long>(fresh),
               r.stats.prefill_seconds,
               r.stats.prefill_seconds > 0 ? fresh / r.stats.prefill_seconds : 0.0,
               static_cast<long long>(r.stats.generated_tokens));
  if (r.stats.decode_seconds > 0) {
    std::fprintf(stderr, " in %.3f s, %.1f tok/s", r.stats.decode_seconds,
                 (r.stats.generated_tokens - 1) / r.stats.decode_seconds);
  }
  std::fprintf(stderr, " | finish: %s]\n", r.finish_reason.c_str());
}

class Session {
 public:
  explicit Session(const RunOptions& o) : o_(o) {
    auto start = std::chrono::steady_clock::now();
    tokenizer_ = std::make_unique<engine::Tokenizer>(engine::load_model_tokenizer(o.model));
    engine::ModelOptions mo;
    mo.device = Device::get(o.device);
    if (!o.dtype.empty()) mo.dtype = parse_dtype(o.dtype);
    mo.graphs = !o.no_graph;
    if (!o.json && isatty(STDERR_FILENO)) mo.progress = draw_progress;
    model_ = engine::load_model(o.model, mo);
    load_seconds_ = seconds_since(start);
    generator_ = std::make_unique<engine::Generator>(*model_, tokenizer_.get(), o.context);
    seed_ = o.seed ? *o.seed : std::random_device{}();
    options_.max_new_tokens = o.max_new_tokens;
    options_.sampling = resolve_sampling(o, model_->config(), seed_);
    options_.stop_strings = o.stop;
    if (!o.ignore_eos) {
      for (int64_t id : model_->config().eos_token_ids)
        options_.stop_ids.push_back(static_cast<TokenId>(id));
      for (TokenId id : tokenizer_->stop_ids()) options_.stop_ids.push_back(id);
    }
    if (o.chat) {
      FS_CHECK(!tokenizer_->chat_template().empty(), kInvalidArgument, "model '", o.model,
               "' has no chat template; use -p without --chat for plain completion");
      template_ = std::make_unique<engine::ChatTemplate>(tokenizer_->chat_template());
      if (!o.system.empty()) messages_.push_back({{"role", "system"}, {"content", o.system}});
    }
    if (o.verbose && !o.json) describe();
  }

  nlohmann::json header() const {
    const engine::ModelInfo& i = model_->info();
    const engine::SamplingOptions& s = options_.sampling;
    return {{"model", i.path},
            {"format", i.format},
            {"architecture", i.architecture},
            {"device", i.device.spec()},
            {"dtype", std::string(dtype_name(i.dtype))},
            {"parameters", i.parameters},
            {"weight_bytes", i.weight_bytes},
            {"weight_types", i.weight_types},
            {"context", generator_->context()},
            {"load_seconds", load_seconds_},
            {"sampling",
             {{"temperature", s.temperature},
              {"top_k", s.top_k},
              {"top_p", s.top_p},
              {"min_p", s.min_p},
              {"repetition_penalty", s.repetition_penalty},
              {"seed", s.seed}}}};
  }

  // One prompt (plain, or one user turn in chat mode); streams unless --json.
  GenerationResult turn(const std::string& text) {
    std::vector<TokenId> ids;
    if (template_) {
      messages_.push_back({{"role", "user"}, {"content", text}});
      engine::ChatTemplateOptions co;
      co.bos_token = tokenizer_->bos_token();
      co.eos_token = tokenizer_->eos_token();
      ids = tokenizer_->encode(template_->render(messages_, co), false);
    } else {
      ids = tokenizer_->encode(text, true);
    }
    engine::StreamCallback stream;
    if (!o_.json) {
      stream = [](const engine::StreamEvent& e) {
        std::fwrite(e.text.data(), 1, e.text.size(), stdout);
        std::fflush(stdout);
        return true;
      };
    }
    GenerationResult result = generator_->generate(ids, options_, stream);
    if (template_) messages_.push_back({{"role", "assistant"}, {"content", result.text}});
    return result;
  }

  // Says once why the decode step could not be recorded as a graph (it then ran op by op).
  void report_graph_error() {
    const std::string& error = model_->info().decode_graph_error;
    if (error.empty() || graph_error_reported_) return;
    std::fprintf(stderr, "note: decode ran op by op; recording it as a CUDA graph failed: %s\n",
                 error.c_str());
    graph_error_reported_ = true;
  }

  void reset() {
    generator_->reset();
    nlohmann::ordered_json kept = nlohmann::ordered_json::array();
    if (!o_.system.empty()) kept.push_back(messages_[0]);
    messages_ = kept;
  }

 private:
  void describe() const {
    const engine::ModelInfo& i = model_->info();
    std::fprintf(stderr, "%s: %s (%s), %lld parameters, %s on %s in %s, context %lld, %.2f s\n",
                 i.path.c_str(), i.architecture.c_str(), i.format.c_str(),
                 static_cast<long long>(i.parameters), i.weight_types.c_str(),
                 i.device.spec().c_str(), std::string(dtype_name(i.dtype)).c_str(),
                 static_cast<long long>(generator_->context()), load_seconds_);
    if (i.decode_graph)
      std::fprintf(stderr, "decode step: recorded as a CUDA graph and replayed\n");
  }

  const RunOptions& o_;
  std::unique_ptr<engine::Tokenizer> tokenizer_;
  std::unique_ptr<engine::Model> model_;
  std::unique_ptr<engine::Generator> generator_;
  std::unique_ptr<engine::ChatTemplate> template_;
  nlohmann::ordered_json messages_ = nlohmann::ordered_json::array();
  GenerationOptions options_;
  uint64_t seed_ = 0;
  double load_seconds_ = 0;
  bool graph_error_reported_ = false;
};

void run(const RunOptions& o) {
  FS_CHECK(!o.prompt.empty() || o.chat, kInvalidArgument,
           "give a prompt with -p, or --chat for an interactive conversation");
  Session session(o);
  if (!o.prompt.empty()) {
    GenerationResult result = session.turn(o.prompt);
    if (o.json) {
      nlohmann::json out = session.header();
      out.update(result_json(result));
      std::cout << out.dump(2) << std::endl;
    } else {
      std::fputc('\n', stdout);
      print_stats(result);
      session.report_graph_error();
    }
    return;
  }
  // Interactive chat: one user turn per line; the KV cache keeps the conversation's prefix.
  bool tty = isatty(STDIN_FILENO);
  if (tty && !o.json) std::fprintf(stderr, "chat mode: /reset forgets, /exit or Ctrl-D quits\n");
  std::string line;
  while (true) {
    if (tty) std::fprintf(stderr, "> "), std::fflush(stderr);
    if (!std::getline(std::cin, line) || line == "/exit" || line == "/quit") break;
    if (line.empty()) continue;
    if (line == "/reset") {
      session.reset();
      continue;
    }
    GenerationResult result = session.turn(line);
    if (o.json) {
      std::cout << result_json(result).dump() << std::endl;
    } else {
      std::fputc('\n', stdout);
      if (o.verbose) print_stats(result);
      session.report_graph_error();
    }
  }
}

}  // namespace

void register_run_command(CLI::App& app) {
  auto o = std::make_shared<RunOptions>();
  CLI::App* cmd = app.add_subcommand(
      "run", "Generate text with a model: a Hugging Face folder or a GGUF file.");
  cmd->add_option("-m,--model", o->model, "Model folder (config.json + safetensors) or .gguf file")
      ->required();
  cmd->add_option("-p,--prompt", o->prompt, "Prompt text (omit with --chat for interactive chat)");
  cmd->add_option("--device", o->device, "Device: cpu, cuda:0, opencl:0 (see `flagstone info`)")
      ->capture_default_str();
  cmd->add_option("--dtype", o->dtype,
                  "Activation dtype: f32, f16, bf16 (default f32 on cpu/OpenCL, the model's "
                  "16-bit type on GPUs)");
  cmd->add_option("-n,--max-tokens", o->max_new_tokens, "Tokens to generate at most")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("-c,--ctx-size", o->context,
                  "Context (KV cache) length; 0: the model's, capped at 8192")
      ->capture_default_str();
  cmd->add_flag("--chat", o->chat,
                "Apply the model's chat template; without -p, chat interactively on stdin");
  cmd->add_option("--system", o->system, "System message for --chat");
  cmd->add_option("--temp,--temperature", o->temperature, "Sampling temperature; 0 is greedy");
  cmd->add_option("--top-k", o->top_k, "Keep the k most likely tokens (0: off)");
  cmd->add_option("--top-p", o->top_p, "Keep the smallest set with this probability (1: off)");
  cmd->add_option("--min-p", o->min_p, "Drop tokens below min-p times the best one (0: off)");
  cmd->add_option("--repeat-penalty", o->repetition_penalty,
                  "Penalize tokens already seen (1: off; HF repetition_penalty)");
  cmd->add_option("--seed", o->seed, "Random seed (default: random; printed with --json)");
  cmd->add_option("--stop", o->stop, "Stop when this text appears (repeatable)")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  cmd->add_flag("--ignore-eos", o->ignore_eos, "Keep going past end-of-sequence tokens");
  cmd->add_flag("--no-graph", o->no_graph,
                "On CUDA, run each decode step op by op instead of replaying a recorded graph");
  cmd->add_flag("--json", o->json, "Print one JSON object (per turn in chat) instead of text");
  cmd->add_flag("-v,--verbose", o->verbose, "Describe the model and print statistics per turn");
  cmd->footer(
      "Sampling defaults come from the model's generation_config.json when it sets do_sample;\n"
      "otherwise temperature 0.8, top-k 40, top-p 0.95, min-p 0.05 (as llama.cpp). Generation\n"
      "stops at the model's EOS / end-of-turn tokens, a --stop text, or -n tokens.\n"
      "Examples:\n"
      "  flagstone run -m ./Llama-3.2-1B -p \"The capital of France is\" -n 32 --temp 0\n"
      "  flagstone run -m model-q8_0.gguf --device cuda:0 --chat --system \"Be brief.\"\n"
      "  flagstone run -m ./Qwen2.5-0.5B-Instruct --chat -p \"Hi!\" --json | jq .text");
  cmd->callback([o] { run(*o); });
}

}  // namespace flagstone::cli
