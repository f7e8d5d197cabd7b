// The dispatch policy: provider order, per-op order, deny list and strict mode. Users set it in
// a JSON file (FLAGSTONE_OPS_CONFIG) or the environment; set_policy() overrides both.
#pragma once

#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace flagstone::ops {

// Who wrote an implementation: hand-written code, a vendor library, the kernel compiler, or the
// float64 reference (a cpu implementation of last resort, which the policy may deny).
enum class Provider { kNative, kVendor, kGenerated, kReference };
inline constexpr Provider kAllProviders[] = {Provider::kVendor, Provider::kGenerated,
                                             Provider::kNative, Provider::kReference};

std::string_view provider_name(Provider provider);
// "native", "vendor", "generated", "reference"; throws kInvalidArgument naming the text.
Provider parse_provider(std::string_view text);

// Environment variables (each overrides the config file's field):
//   FLAGSTONE_OPS_CONFIG=path.json        the file below
//   FLAGSTONE_OPS_PROVIDERS=vendor,generated,native
//   FLAGSTONE_OPS_ORDER="mm=native,vendor;softmax=generated"
//   FLAGSTONE_OPS_DENY=softmax,generated,cuda:mm    ops, providers or op:provider pairs
//   FLAGSTONE_OPS_STRICT=1                no fallback: an error instead
// File: {"providers": [...], "ops": {"mm": ["vendor", "native"]}, "deny": [...], "strict": false}
struct Policy {
  // Preference order; providers left out are not used. The reference is appended last unless
  // denied, so every op still runs on the cpu.
  std::vector<Provider> providers{Provider::kVendor, Provider::kGenerated, Provider::kNative,
                                  Provider::kReference};
  std::map<std::string, std::vector<Provider>> op_providers;  // per-op order, replaces providers
  std::set<std::string> deny_ops;     // these ops use only the reference (when not denied)
  std::set<Provider> deny_providers;  // never used
  std::set<std::pair<std::string, Provider>> deny_op_providers;
  // No fallback of any kind: no other provider after a runtime refusal, no cpu round trip for
  // a device without an implementation, no reference for a denied op. Errors name op, device,
  // dtype instead.
  bool strict = false;

  // The providers to try for `op`, in order, with denials applied.
  std::vector<Provider> order_for(std::string_view op) const;
  std::string to_string() const;

  // Throws kFormat naming `origin` and the bad field.
  static Policy from_json_text(std::string_view text, std::string_view origin = "policy");
  static Policy from_file(const std::string& path);
  // Applies the FLAGSTONE_OPS_* variables on top of `base`.
  static Policy from_environment(Policy base);
};

// The process-wide policy: on first use, FLAGSTONE_OPS_CONFIG (if set) then the variables.
Policy policy();
void set_policy(Policy policy);
// Re-reads the environment (and config file) into the process-wide policy.
void reload_policy();

}  // namespace flagstone::ops
