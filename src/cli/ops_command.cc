// `flagstone ops`: the operator coverage matrix (op x backend x dtype x provider) and what the
// dispatch policy picks on each device of this machine, as text or JSON.
#include <cstdio>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "commands.h"
#include "flagstone/ops/ops.h"

namespace flagstone::cli {
namespace {

struct OpsOptions {
  bool json = false;
  std::string op;
  std::string family;
};

std::string dtype_list(const std::vector<DType>& dtypes) {
  std::string out;
  for (DType d : dtypes) {
    if (!out.empty()) out += ',';
    out += dtype_name(d);
  }
  return out;
}

// What dispatch runs for (op, device, dtype): an implementation name, "cpu fallback: name",
// or "none".
std::string choice(const ops::OpSchema& schema, const runtime::Device& device, DType dtype) {
  ops::Selection s = ops::select(schema.name, device, dtype);
  if (!s.impl) return "none";
  std::string out = s.cpu_fallback ? "cpu fallback: " : "";
  out += s.impl->name;
  return out;
}

bool wanted(const ops::OpSchema& s, const OpsOptions& o) {
  return (o.op.empty() || s.name == o.op) && (o.family.empty() || s.family == o.family);
}

void print_json(const OpsOptions& o) {
  nlohmann::json out;
  out["policy"] = ops::policy().to_string();
  out["devices"] = nlohmann::json::array();
  for (const auto& d : runtime::all_devices()) out["devices"].push_back(d.spec());
  out["ops"] = nlohmann::json::array();
  for (const ops::OpSchema* s : ops::Registry::global().schemas()) {
    if (!wanted(*s, o)) continue;
    nlohmann::json op{{"name", s->name},       {"family", s->family}, {"inputs", s->inputs},
                      {"outputs", s->outputs}, {"attrs", s->attrs},   {"doc", s->doc}};
    op["dtypes"] = nlohmann::json::array();
    for (DType d : s->dtypes) op["dtypes"].push_back(std::string(dtype_name(d)));
    op["implementations"] = nlohmann::json::array();
    for (const ops::Implementation* impl : ops::Registry::global().implementations(s->name)) {
      nlohmann::json i{{"name", impl->name},
                       {"backend", impl->backend},
                       {"provider", std::string(ops::provider_name(impl->provider))}};
      i["dtypes"] = nlohmann::json::array();
      for (DType d : impl->dtypes) i["dtypes"].push_back(std::string(dtype_name(d)));
      op["implementations"].push_back(i);
    }
    nlohmann::json dispatch = nlohmann::json::object();
    for (const auto& device : runtime::all_devices())
      for (DType d : s->dtypes)
        dispatch[device.spec()][std::string(dtype_name(d))] = choice(*s, device, d);
    op["dispatch"] = dispatch;
    out["ops"].push_back(op);
  }
  std::printf("%s\n", out.dump(2).c_str());
}

void print_text(const OpsOptions& o) {
  std::printf("policy: %s\n\n", ops::policy().to_string().c_str());
  std::printf("%-30s %-10s %-8s %-10s %s\n", "op", "family", "backend", "provider", "dtypes");
  int total = 0, accelerated = 0;
  std::map<std::string, int> per_backend;
  for (const ops::OpSchema* s : ops::Registry::global().schemas()) {
    if (!wanted(*s, o)) continue;
    ++total;
    bool fast = false;
    for (const ops::Implementation* impl : ops::Registry::global().implementations(s->name)) {
      std::printf("%-30s %-10s %-8s %-10s %s\n", s->name.c_str(), s->family.c_str(),
                  impl->backend.c_str(), std::string(ops::provider_name(impl->provider)).c_str(),
                  dtype_list(impl->dtypes).c_str());
      if (impl->provider != ops::Provider::kReference) {
        fast = true;
        std::string key = impl->backend;
        key += ' ';
        key += ops::provider_name(impl->provider);
        ++per_backend[key];
      }
    }
    accelerated += fast;
    for (const auto& device : runtime::all_devices()) {
      if (device.is_cpu() || s->dtypes.empty()) continue;
      std::string c = choice(*s, device, s->dtypes.front());
      std::printf("%-30s %-10s %-8s %-10s %s -> %s\n", "", "", device.backend().c_str(), "dispatch",
                  std::string(dtype_name(s->dtypes.front())).c_str(), c.c_str());
    }
  }
  std::printf("\n%d ops, %d with an implementation besides the float64 reference\n", total,
              accelerated);
  for (const auto& [key, n] : per_backend) std::printf("  %-20s %d ops\n", key.c_str(), n);
}

}  // namespace

void register_ops_command(CLI::App& app) {
  // The library stays silent unless a sink is set; the CLI shows dispatch fallbacks on stderr.
  ops::set_log_sink(ops::stderr_log_sink(ops::LogLevel::kInfo));
  CLI::App* cmd = app.add_subcommand(
      "ops",
      "Show the operator library: every op's implementations per backend, dtype and "
      "provider, and what dispatch picks on each device here.");
  auto options = std::make_shared<OpsOptions>();
  cmd->add_flag("--json", options->json, "Print JSON instead of text");
  cmd->add_option("--op", options->op, "Show one op (e.g. softmax)");
  cmd->add_option("--family", options->family,
                  "Show one family: unary, binary, reduction, scan, norm, llm, attention, sort, "
                  "sample, linalg, movement, factory");
  cmd->footer(
      "Dispatch follows the policy from FLAGSTONE_OPS_CONFIG (a JSON file) and the variables\n"
      "FLAGSTONE_OPS_PROVIDERS=vendor,generated,native  FLAGSTONE_OPS_ORDER=mm=native,vendor\n"
      "FLAGSTONE_OPS_DENY=softmax,generated  FLAGSTONE_OPS_STRICT=1 (no fallback: an error).\n"
      "Examples:\n"
      "  flagstone ops --family linalg\n"
      "  FLAGSTONE_OPS_PROVIDERS=native flagstone ops --op mm\n"
      "  flagstone ops --json | jq '.ops[] | select(.name==\"softmax\") | .dispatch'");
  cmd->callback([options] {
    if (!options->op.empty())
      ops::Registry::global().schema(options->op);  // clear unknown-op error
    options->json ? print_json(*options) : print_text(*options);
  });
}

}  // namespace flagstone::cli
