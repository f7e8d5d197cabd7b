// The autotuner: times each candidate config of a kernel with runtime Events, per device and
// shape bucket, and keeps the winner in memory and in a JSON file of the cache folder.
#include <nlohmann/json.hpp>

#include <limits>

#include "cache.h"
#include "flagstone/base/error.h"
#include "flagstone/compiler/kernel.h"
#include "kernel_state.h"

namespace flagstone::compiler {

namespace {

std::string tune_file(const std::string& kernel, const std::vector<Config>& configs) {
  std::string all = kernel;
  for (const Config& c : configs) all += "\n" + c.str();
  return cache_dir() + "/autotune/" + kernel + "-" + hash_hex(all).substr(0, 16) + ".json";
}

std::optional<Config> read_choice(const std::string& path, const std::string& key,
                                  const std::vector<Config>& configs) {
  auto bytes = read_file_bytes(path);
  if (!bytes) return std::nullopt;
  nlohmann::json doc = nlohmann::json::parse(bytes->begin(), bytes->end(), nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains(key)) return std::nullopt;
  const nlohmann::json& entry = doc[key];
  if (!entry.is_object() || !entry.contains("config") || !entry["config"].is_string())
    return std::nullopt;
  std::string text = entry["config"].get<std::string>();
  for (const Config& c : configs)
    if (c.str() == text) return c;
  return std::nullopt;  // the candidates changed since: tune again
}

void write_choice(const std::string& path, const std::string& key, const Config& config,
                  double ms) {
  nlohmann::json doc = nlohmann::json::object();
  if (auto bytes = read_file_bytes(path)) {
    nlohmann::json old = nlohmann::json::parse(bytes->begin(), bytes->end(), nullptr, false);
    if (!old.is_discarded() && old.is_object()) doc = std::move(old);
  }
  doc[key] = {{"config", config.str()}, {"ms", ms}};
  std::string text = doc.dump(2);
  write_file_atomic(path, std::vector<uint8_t>(text.begin(), text.end()));
}

}  // namespace

Config Kernel::tune(const Stream& stream, const GridFn& grid, const std::vector<Arg>& args,
                    const std::string& shape_bucket) const {
  const Device& device = stream.device();
  std::string key = device.spec() + "|" + device.info().name + "|" + shape_bucket;
  if (configs_.size() == 1) return configs_.front();
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    auto it = state_->tuned.find(key);
    if (it != state_->tuned.end()) return it->second;
  }
  std::string path = tune_file(name_, configs_);
  std::optional<Config> best = read_choice(path, key, configs_);
  if (!best) {
    double best_ms = std::numeric_limits<double>::infinity();
    std::string failures;
    for (const Config& c : configs_) {
      try {
        Grid g = grid(c);
        launch(stream, g, args, c);  // warm-up, and compiles
        runtime::Event start(device);
        runtime::Event stop(device);
        constexpr int kReps = 5;
        start.record(stream);
        for (int i = 0; i < kReps; ++i) launch(stream, g, args, c);
        stop.record(stream);
        stop.synchronize();
        double ms = start.elapsed_ms(stop) / kReps;
        if (ms < best_ms) {
          best_ms = ms;
          best = c;
        }
      } catch (const Error& e) {
        // A config the device cannot run (too many threads, too much local memory) is skipped.
        if (e.category() != ErrorCategory::kUnsupported) throw;
        failures += " {" + c.str() + "}: " + e.message();
      }
    }
    FS_CHECK(best.has_value(), kUnsupported, "kernel '", name_, "': no config runs on ",
             device.spec(), ":", failures);
    write_choice(path, key, *best, best_ms);
  }
  std::lock_guard<std::mutex> lock(state_->mutex);
  state_->tuned[key] = *best;
  return *best;
}

void Kernel::launch_tuned(const Stream& stream, const GridFn& grid, const std::vector<Arg>& args,
                          const std::string& shape_bucket) const {
  Config c = tune(stream, grid, args, shape_bucket);
  launch(stream, grid(c), args, c);
}

}  // namespace flagstone::compiler
