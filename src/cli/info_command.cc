// `flagstone info`: the build, the backends this binary probed (with the reason a backend has
// no devices) and each device's properties, as text or JSON.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "commands.h"
#include "flagstone/runtime/device.h"
#include "flagstone/runtime/thread_pool.h"
#include "flagstone/version.h"

namespace flagstone::cli {
namespace {

using runtime::DeviceInfo;

const char* type_name(runtime::DeviceType type) {
  switch (type) {
    case runtime::DeviceType::kCpu:
      return "cpu";
    case runtime::DeviceType::kGpu:
      return "gpu";
    case runtime::DeviceType::kAccelerator:
      return "accelerator";
  }
  return "unknown";
}

std::vector<std::string> built_with() {
  std::vector<std::string> parts;
#ifdef FLAGSTONE_BUILT_WITH_CUDA
  parts.push_back("cuda");
#endif
#ifdef FLAGSTONE_BUILT_WITH_OPENCL
  parts.push_back("opencl");
#endif
#ifdef FLAGSTONE_BUILT_WITH_MPI
  parts.push_back("mpi");
#endif
  return parts;
}

std::vector<std::string> cap_names(const runtime::DeviceCaps& caps) {
  std::vector<std::string> out;
  if (caps.fp64) out.push_back("fp64");
  if (caps.fp16) out.push_back("fp16");
  if (caps.bf16) out.push_back("bf16");
  if (caps.int8_dot) out.push_back("int8-dot");
  if (caps.pinned_host) out.push_back("pinned-host");
  if (caps.host_accessible) out.push_back("host-accessible");
  if (caps.async_copy) out.push_back("async-copy");
  return out;
}

nlohmann::json device_json(const runtime::Device& device) {
  const DeviceInfo& info = device.info();
  return {{"device", device.spec()},
          {"backend", info.backend},
          {"index", info.index},
          {"name", info.name},
          {"vendor", info.vendor},
          {"type", type_name(info.type)},
          {"arch", info.arch},
          {"driver_version", info.driver_version},
          {"memory_bytes", info.memory_bytes},
          {"max_allocation_bytes", info.max_allocation_bytes},
          {"compute_units", info.compute_units},
          {"clock_mhz", info.clock_mhz},
          {"capabilities", cap_names(info.caps)},
          {"extra", info.extra}};
}

std::string gib(uint64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.1f GiB", static_cast<double>(bytes) / (1u << 30));
  return text;
}

void print_text() {
  auto with = built_with();
  std::string with_text;
  for (auto& w : with) with_text += (with_text.empty() ? "" : " ") + w;
  std::printf("flagstone %s (built with: %s; %s)\n", FLAGSTONE_VERSION,
              with_text.empty() ? "cpu only" : with_text.c_str(), FLAGSTONE_CXX_COMPILER);
  std::printf("cpu threads: %d (set FLAGSTONE_NUM_THREADS to change)\n\n", runtime::cpu_threads());
  std::printf("backends:\n");
  for (const auto& status : runtime::backend_statuses()) {
    std::printf("  %-8s %-12s %s\n", status.name.c_str(),
                status.available ? "available" : "unavailable",
                status.available ? (std::to_string(status.device_count) + " device(s)").c_str()
                                 : status.reason.c_str());
  }
  std::printf("\ndevices:\n");
  for (const auto& device : runtime::all_devices()) {
    const DeviceInfo& info = device.info();
    std::printf("  %-10s %s\n", device.spec().c_str(), info.name.c_str());
    std::printf("             vendor %s, %s, arch %s, driver %s\n", info.vendor.c_str(),
                type_name(info.type), info.arch.c_str(), info.driver_version.c_str());
    std::printf("             memory %s (max allocation %s), %d compute units, %d MHz\n",
                gib(info.memory_bytes).c_str(), gib(info.max_allocation_bytes).c_str(),
                info.compute_units, info.clock_mhz);
    std::string caps;
    for (auto& c : cap_names(info.caps)) caps += (caps.empty() ? "" : " ") + c;
    std::printf("             capabilities: %s\n", caps.c_str());
    for (const auto& [key, value] : info.extra) {
      std::printf("             %s: %s\n", key.c_str(), value.c_str());
    }
  }
}

void print_json() {
  nlohmann::json out;
  out["version"] = FLAGSTONE_VERSION;
  out["built_with"] = built_with();
  out["cpu_threads"] = runtime::cpu_threads();
  out["backends"] = nlohmann::json::array();
  for (const auto& status : runtime::backend_statuses()) {
    out["backends"].push_back({{"name", status.name},
                               {"available", status.available},
                               {"device_count", status.device_count},
                               {"reason", status.reason}});
  }
  out["devices"] = nlohmann::json::array();
  for (const auto& device : runtime::all_devices()) out["devices"].push_back(device_json(device));
  std::cout << out.dump(2) << "\n";
}

}  // namespace

void register_info_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "info", "List the backends this binary found and every device's properties.");
  auto json = std::make_shared<bool>(false);
  cmd->add_flag("--json", *json, "Print JSON instead of text");
  cmd->footer(
      "A backend without devices shows the reason (no driver, no ICD, ...).\n"
      "Example: flagstone info --json | jq '.devices[].device'");
  cmd->callback([json] { *json ? print_json() : print_text(); });
}

}  // namespace flagstone::cli
