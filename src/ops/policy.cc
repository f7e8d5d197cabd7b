// Parsing and applying the dispatch policy from JSON and FLAGSTONE_OPS_* variables.
#include "flagstone/ops/policy.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "flagstone/base/error.h"
#include "internal.h"

namespace flagstone::ops {
namespace {

std::vector<std::string> split(std::string_view text, char sep) {
  std::vector<std::string> parts;
  std::string current;
  for (char c : text) {
    if (c == sep) {
      parts.push_back(current);
      current.clear();
    } else if (c != ' ' && c != '\t') {
      current += c;
    }
  }
  parts.push_back(current);
  parts.erase(std::remove(parts.begin(), parts.end(), std::string()), parts.end());
  return parts;
}

bool is_provider_name(std::string_view text) {
  return text == "native" || text == "vendor" || text == "generated" || text == "reference";
}

std::vector<Provider> parse_provider_list(const std::vector<std::string>& names) {
  std::vector<Provider> out;
  for (const auto& n : names) {
    Provider p = parse_provider(n);
    if (std::find(out.begin(), out.end(), p) == out.end()) out.push_back(p);
  }
  return out;
}

// One deny entry: "generated" (a provider), "softmax" (an op) or "softmax:generated".
void add_deny(Policy& policy, const std::string& entry) {
  auto colon = entry.find(':');
  if (colon != std::string::npos) {
    std::string op = entry.substr(0, colon);
    FS_CHECK(!op.empty(), kInvalidArgument, "deny entry '", entry, "' has no op before ':'");
    policy.deny_op_providers.insert({op, parse_provider(entry.substr(colon + 1))});
  } else if (is_provider_name(entry)) {
    policy.deny_providers.insert(parse_provider(entry));
  } else {
    policy.deny_ops.insert(entry);
  }
}

// "mm=native,vendor;softmax=generated"
void apply_order_text(Policy& policy, std::string_view text, std::string_view origin) {
  for (const auto& item : split(text, ';')) {
    auto eq = item.find('=');
    FS_CHECK(eq != std::string::npos && eq > 0, kInvalidArgument, origin, ": per-op order '", item,
             "' is not of the form op=provider,provider");
    policy.op_providers[item.substr(0, eq)] =
        parse_provider_list(split(std::string_view(item).substr(eq + 1), ','));
  }
}

std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);
  if (!v) return std::nullopt;
  return std::string(v);
}

struct PolicyState {
  std::mutex mutex;
  std::shared_ptr<const Policy> policy;
  std::atomic<uint64_t> version{1};
};

PolicyState& policy_state() {
  static PolicyState s;
  return s;
}

Policy load_default_policy() {
  Policy base;
  if (auto path = env("FLAGSTONE_OPS_CONFIG"); path && !path->empty())
    base = Policy::from_file(*path);
  return Policy::from_environment(base);
}

}  // namespace

std::string_view provider_name(Provider provider) {
  switch (provider) {
    case Provider::kNative:
      return "native";
    case Provider::kVendor:
      return "vendor";
    case Provider::kGenerated:
      return "generated";
    case Provider::kReference:
      return "reference";
  }
  return "?";
}

Provider parse_provider(std::string_view text) {
  if (text == "native") return Provider::kNative;
  if (text == "vendor") return Provider::kVendor;
  if (text == "generated") return Provider::kGenerated;
  if (text == "reference") return Provider::kReference;
  throw_error(ErrorCategory::kInvalidArgument, "unknown ops provider '", text,
              "' (expected native, vendor, generated or reference)");
}

std::vector<Provider> Policy::order_for(std::string_view op) const {
  auto it = op_providers.find(std::string(op));
  std::vector<Provider> order = it != op_providers.end() ? it->second : providers;
  if (std::find(order.begin(), order.end(), Provider::kReference) == order.end())
    order.push_back(Provider::kReference);
  bool op_denied = deny_ops.count(std::string(op)) > 0;
  std::vector<Provider> out;
  for (Provider p : order) {
    if (deny_providers.count(p)) continue;
    if (deny_op_providers.count({std::string(op), p})) continue;
    if (op_denied && p != Provider::kReference) continue;
    if (op_denied && strict) continue;
    out.push_back(p);
  }
  return out;
}

std::string Policy::to_string() const {
  std::ostringstream out;
  out << "providers=";
  for (size_t i = 0; i < providers.size(); ++i)
    out << (i ? "," : "") << provider_name(providers[i]);
  for (const auto& [op, order] : op_providers) {
    out << " " << op << "=";
    for (size_t i = 0; i < order.size(); ++i) out << (i ? "," : "") << provider_name(order[i]);
  }
  if (!deny_ops.empty() || !deny_providers.empty() || !deny_op_providers.empty()) {
    out << " deny=";
    bool first = true;
    for (const auto& op : deny_ops) out << (first ? "" : ",") << op, first = false;
    for (Provider p : deny_providers) out << (first ? "" : ",") << provider_name(p), first = false;
    for (const auto& [op, p] : deny_op_providers)
      out << (first ? "" : ",") << op << ":" << provider_name(p), first = false;
  }
  out << " strict=" << (strict ? "1" : "0");
  return out.str();
}

Policy Policy::from_json_text(std::string_view text, std::string_view origin) {
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw_error(ErrorCategory::kFormat, origin, ": not valid JSON: ", e.what());
  }
  FS_CHECK(doc.is_object(), kFormat, origin, ": the ops policy must be a JSON object");
  Policy policy;
  auto string_list = [&](const nlohmann::json& v, const char* field) {
    FS_CHECK(v.is_array(), kFormat, origin, ": field '", field, "' must be a list of strings");
    std::vector<std::string> out;
    for (const auto& item : v) {
      FS_CHECK(item.is_string(), kFormat, origin, ": field '", field, "' holds a non-string ",
               item.dump());
      out.push_back(item.get<std::string>());
    }
    return out;
  };
  try {
    for (const auto& [key, value] : doc.items()) {
      if (key == "providers") {
        policy.providers = parse_provider_list(string_list(value, "providers"));
      } else if (key == "ops") {
        FS_CHECK(value.is_object(), kFormat, origin, ": field 'ops' must map op names to lists");
        for (const auto& [op, order] : value.items())
          policy.op_providers[op] = parse_provider_list(string_list(order, "ops"));
      } else if (key == "deny") {
        for (const auto& entry : string_list(value, "deny")) add_deny(policy, entry);
      } else if (key == "strict") {
        FS_CHECK(value.is_boolean(), kFormat, origin, ": field 'strict' must be true or false");
        policy.strict = value.get<bool>();
      } else {
        throw_error(ErrorCategory::kFormat, origin, ": unknown field '", key,
                    "' (expected providers, ops, deny, strict)");
      }
    }
  } catch (const Error& e) {
    if (e.category() == ErrorCategory::kFormat) throw;
    throw_error(ErrorCategory::kFormat, origin, ": ", e.message());
  }
  return policy;
}

Policy Policy::from_file(const std::string& path) {
  std::ifstream in(path);
  FS_CHECK(in.good(), kIo, "cannot open ops policy file '", path, "'");
  std::stringstream text;
  text << in.rdbuf();
  return from_json_text(text.str(), path);
}

Policy Policy::from_environment(Policy base) {
  if (auto v = env("FLAGSTONE_OPS_PROVIDERS"); v && !v->empty())
    base.providers = parse_provider_list(split(*v, ','));
  if (auto v = env("FLAGSTONE_OPS_ORDER"); v && !v->empty())
    apply_order_text(base, *v, "FLAGSTONE_OPS_ORDER");
  if (auto v = env("FLAGSTONE_OPS_DENY"); v && !v->empty())
    for (const auto& entry : split(*v, ',')) add_deny(base, entry);
  if (auto v = env("FLAGSTONE_OPS_STRICT"); v && !v->empty()) {
    FS_CHECK(*v == "0" || *v == "1" || *v == "true" || *v == "false", kInvalidArgument,
             "FLAGSTONE_OPS_STRICT='", *v, "' (expected 0, 1, true or false)");
    base.strict = *v == "1" || *v == "true";
  }
  return base;
}

std::shared_ptr<const Policy> current_policy() {
  auto& s = policy_state();
  std::lock_guard<std::mutex> lock(s.mutex);
  if (!s.policy) s.policy = std::make_shared<const Policy>(load_default_policy());
  return s.policy;
}

uint64_t policy_version() {
  return policy_state().version.load(std::memory_order_acquire);
}

Policy policy() {
  return *current_policy();
}

void set_policy(Policy policy) {
  auto& s = policy_state();
  std::lock_guard<std::mutex> lock(s.mutex);
  s.policy = std::make_shared<const Policy>(std::move(policy));
  s.version.fetch_add(1, std::memory_order_acq_rel);
}

void reload_policy() {
  Policy fresh = load_default_policy();
  set_policy(std::move(fresh));
}

}  // namespace flagstone::ops
