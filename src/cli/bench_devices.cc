// `flagstone bench devices`: a smoke benchmark of each device's copy paths (host to device,
// device to host, device to device) timed with the device's own events.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <vector>

#include "bench_timing.h"
#include "commands.h"
#include "flagstone/runtime/device.h"

namespace flagstone::cli {
namespace {

using runtime::Buffer;
using runtime::Device;
using runtime::Stream;

struct Options {
  double size_mib = 64;
  int repeat = 10;
  std::vector<std::string> devices;
  bool json = false;
};

nlohmann::json bench_device(const Device& device, const Options& options) {
  size_t bytes = static_cast<size_t>(options.size_mib * 1024 * 1024);
  Stream stream = Stream::default_stream(device);
  runtime::PinnedHostBuffer host(device, bytes);
  std::vector<unsigned char> pageable(bytes);
  for (size_t i = 0; i < bytes; ++i) pageable[i] = static_cast<unsigned char>(i * 131 + 7);
  std::copy(pageable.begin(), pageable.end(), static_cast<unsigned char*>(host.data()));
  Buffer a = Buffer::allocate(device, bytes);
  Buffer b = Buffer::allocate(device, bytes);
  double h2d = median_ms(device, stream, options.repeat,
                         [&] { runtime::copy_host_to_device(stream, a, 0, host.data(), bytes); });
  double d2h = median_ms(device, stream, options.repeat,
                         [&] { runtime::copy_device_to_host(stream, host.data(), a, 0, bytes); });
  double d2d = median_ms(device, stream, options.repeat,
                         [&] { runtime::copy_device_to_device(stream, b, 0, a, 0, bytes); });
  auto gbps = [&](double ms, double factor) { return factor * bytes / (ms * 1e-3) / 1e9; };
  return {{"device", device.spec()},
          {"name", device.info().name},
          {"bytes", bytes},
          {"pinned_host", host.is_pinned()},
          {"h2d_ms", h2d},
          {"h2d_gbps", gbps(h2d, 1)},
          {"d2h_ms", d2h},
          {"d2h_gbps", gbps(d2h, 1)},
          {"d2d_ms", d2d},
          // Device copies count bytes read plus bytes written, as memory-bandwidth figures do.
          {"d2d_rw_gbps", gbps(d2d, 2)}};
}

void run(const Options& options) {
  std::vector<Device> devices;
  if (options.devices.empty()) {
    devices = runtime::all_devices();
  } else {
    for (const auto& spec : options.devices) devices.push_back(Device::get(spec));
  }
  nlohmann::json results = nlohmann::json::array();
  if (!options.json) {
    std::printf("%-10s %10s %12s %12s %16s  %s\n", "device", "size", "h2d GB/s", "d2h GB/s",
                "d2d GB/s (r+w)", "name");
  }
  for (const auto& device : devices) {
    nlohmann::json r = bench_device(device, options);
    if (!options.json) {
      std::printf("%-10s %7.0f MiB %12.2f %12.2f %16.2f  %s%s\n", device.spec().c_str(),
                  options.size_mib, r["h2d_gbps"].get<double>(), r["d2h_gbps"].get<double>(),
                  r["d2d_rw_gbps"].get<double>(), device.info().name.c_str(),
                  r["pinned_host"].get<bool>() ? " (pinned host memory)" : "");
      std::fflush(stdout);
    }
    results.push_back(std::move(r));
  }
  if (options.json) std::cout << results.dump(2) << "\n";
}

}  // namespace

void register_bench_devices_command(CLI::App& bench) {
  auto options = std::make_shared<Options>();
  CLI::App* cmd = bench.add_subcommand(
      "devices", "Smoke benchmark: copy bandwidth host->device, device->host, device->device.");
  cmd->add_option("--size-mib", options->size_mib, "Bytes per copy, in MiB")
      ->default_val(64)
      ->check(CLI::Range(0.001, 65536.0));
  cmd->add_option("--repeat", options->repeat, "Timed repetitions (median reported)")
      ->default_val(10)
      ->check(CLI::Range(1, 100000));
  cmd->add_option("-d,--device", options->devices,
                  "Devices to measure (default: all), e.g. cuda:0");
  cmd->add_flag("--json", options->json, "Print JSON");
  cmd->callback([options] { run(*options); });
}

}  // namespace flagstone::cli
