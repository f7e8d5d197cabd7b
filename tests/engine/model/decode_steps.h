// Helpers shared by the decode-step tests: an environment switch for one scope, the check that a
// device runs the sm_90-only step paths, and the logits of each step after a prompt, with the
// tokens fed forced from another run so two paths see the same inputs.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "flagstone/engine/model/model.h"

namespace flagstone::engine::testing {

// Sets an environment variable for one scope (the model reads its FLAGSTONE_ENGINE_* switches
// when it records a step).
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) { ::setenv(name, value, 1); }
  ~ScopedEnv() { ::unsetenv(name_); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
};

// Why `device` cannot run `what` (a CUDA path for compute capability 9.0); empty when it can.
inline std::string why_not_sm90(const Device& device, const std::string& what) {
  if (device.backend() != "cuda") return what + " is CUDA's";
  const std::string arch = device.info().arch;
  if (arch.rfind("sm_", 0) != 0 || std::atoi(arch.c_str() + 3) < 90)
    return what + " needs sm_90 (" + arch + ")";
  return "";
}

// Logits of each of `steps` decode steps after `prompt`; each step feeds `forced`'s token when
// given (so two paths see the same inputs), else its own greedy pick.
struct Steps {
  std::vector<std::vector<double>> logits;
  std::vector<int64_t> tokens;
};
inline Steps decode(Model& model, const std::vector<TokenId>& prompt, int64_t steps,
                    const std::vector<int64_t>* forced = nullptr) {
  const auto n = static_cast<int64_t>(prompt.size());
  std::vector<int64_t> ids(prompt.begin(), prompt.end());
  KvCache cache = model.new_cache(1, 112);
  Tensor logits = model.forward(Tensor::from_vector(ids, {1, n}), cache);
  Steps out;
  for (int64_t i = 0; i < steps; ++i) {
    std::vector<double> all = logits.to_double_vector();
    const int64_t pick = std::max_element(all.begin(), all.end()) - all.begin();
    out.tokens.push_back(pick);
    const int64_t next = forced ? (*forced)[i] : pick;
    logits = model.forward(Tensor::from_vector(std::vector<int64_t>{next}, {1, 1}), cache);
    out.logits.push_back(logits.to_double_vector());
  }
  return out;
}

}  // namespace flagstone::engine::testing
