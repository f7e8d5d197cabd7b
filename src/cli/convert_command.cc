// `flagstone convert`: a Hugging Face model folder to one GGUF file (weights, metadata and the
// tokenizer, so `flagstone run -m model.gguf` needs nothing else), or a GGUF file back to a folder.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "commands.h"
#include "flagstone/engine/format/convert.h"
#include "flagstone/engine/model/model.h"
#include "progress_bar.h"

namespace flagstone::cli {
namespace {

namespace fs = std::filesystem;

struct Options {
  std::string input;
  std::string output;
  std::string type = "f16";
  std::string dequantize_to = "f32";
  std::string name;
  bool force = false;
  bool json = false;
};

std::string lower(std::string s) {
  for (char& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

void run(const Options& o) {
  std::error_code ec;
  FS_CHECK(fs::exists(o.input, ec), kNotFound, "input '", o.input,
           "' does not exist (give a Hugging Face model folder or a .gguf file)");
  const bool to_gguf = !engine::is_gguf_file(o.input);
  FS_CHECK(!to_gguf || fs::is_directory(o.input, ec), kFormat, "input '", o.input,
           "' is neither a GGUF file nor a model folder with config.json and safetensors");
  std::string output = o.output;
  if (output.empty()) {
    fs::path in = fs::path(o.input).lexically_normal();
    if (in.filename().empty()) in = in.parent_path();
    output = to_gguf ? in.string() + "-" + lower(o.type) + ".gguf"
                     : (in.parent_path() / (in.stem().string() + "-hf")).string();
  }
  FS_CHECK(o.force || !fs::exists(output, ec), kInvalidArgument, "output '", output,
           "' already exists (pass --force to overwrite it)");

  const bool bar = !o.json && isatty(STDERR_FILENO);
  auto progress = [bar](const std::string& tensor, size_t done, size_t total) {
    if (bar) {
      draw_progress_bar("converting", total ? static_cast<double>(done) / total : 1.0, 0, 0, done,
                        total, "tensors", tensor);
    }
  };
  auto start = std::chrono::steady_clock::now();
  DType type = DType::kF32;
  if (to_gguf) {
    if (!o.json && !fs::exists(fs::path(o.input) / "tokenizer.json", ec)) {
      std::fprintf(stderr,
                   "note: '%s' has no tokenizer.json, so the GGUF file carries no tokenizer and "
                   "`flagstone run` cannot encode text with it\n",
                   o.input.c_str());
    }
    engine::format::HfToGgufOptions options;
    options.type = type = parse_dtype(o.type);
    options.name = o.name;
    options.progress = progress;
    engine::format::convert_hf_to_gguf(o.input, output, options);
  } else {
    engine::format::GgufToHfOptions options;
    options.dequantize_to = type = parse_dtype(o.dequantize_to);
    options.progress = progress;
    engine::format::convert_gguf_to_hf(o.input, output, options);
  }
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  uintmax_t bytes = 0;
  if (fs::is_directory(output, ec)) {
    for (const auto& entry : fs::directory_iterator(output, ec))
      if (entry.is_regular_file(ec)) bytes += entry.file_size(ec);
  } else {
    bytes = fs::file_size(output, ec);
  }
  if (o.json) {
    nlohmann::json out = {{"input", o.input},
                          {"output", output},
                          {"direction", to_gguf ? "hf-to-gguf" : "gguf-to-hf"},
                          {"type", std::string(dtype_name(type))},
                          {"bytes", bytes},
                          {"seconds", elapsed}};
    std::cout << out.dump(2) << std::endl;
  } else {
    std::fprintf(stderr, "wrote %s (%.1f MiB, %s) in %.1f s\n", output.c_str(), bytes / 1048576.0,
                 std::string(dtype_name(type)).c_str(), elapsed);
  }
}

}  // namespace

void register_convert_command(CLI::App& app) {
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "convert",
      "Convert a Hugging Face model folder to GGUF (weights + tokenizer), or GGUF to safetensors.");
  cmd->add_option("input", o->input, "Model folder (config.json + safetensors) or .gguf file")
      ->required();
  cmd->add_option("-o,--output", o->output,
                  "Output .gguf file or folder (default: INPUT-TYPE.gguf, or STEM-hf/)");
  cmd->add_option("-t,--type", o->type,
                  "Folder to GGUF: weight type f32, f16, bf16, q8_0, q4_0, q4_k or q6_k")
      ->capture_default_str();
  cmd->add_option("--dequantize-to", o->dequantize_to,
                  "GGUF to folder: type of the tensors stored quantized (f32, f16, bf16)")
      ->capture_default_str();
  cmd->add_option("--name", o->name, "general.name of the GGUF file (default: the folder name)");
  cmd->add_flag("-f,--force", o->force, "Overwrite the output if it exists");
  cmd->add_flag("--json", o->json, "Print a JSON summary instead of text");
  cmd->footer(
      "The direction follows the input: a folder becomes one GGUF file with llama.cpp's tensor\n"
      "names and metadata plus the tokenizer (tokenizer.ggml.*, chat template), so it runs with\n"
      "`flagstone run -m FILE` and in llama.cpp; a GGUF file becomes model.safetensors +\n"
      "config.json. Norms and biases stay f32; with q4_0/q4_k the output head is kept at a\n"
      "higher precision, as llama.cpp does. The output is written to a temporary file and\n"
      "renamed, so an interrupted conversion leaves nothing half-written.\n"
      "Examples:\n"
      "  flagstone convert ./Llama-3.2-1B-Instruct -t q8_0 -o llama-1b-q8_0.gguf\n"
      "  flagstone run -m llama-1b-q8_0.gguf --chat\n"
      "  flagstone convert llama-1b-q8_0.gguf -o ./llama-1b-hf --dequantize-to bf16");
  cmd->callback([o] { run(*o); });
}

}  // namespace flagstone::cli
