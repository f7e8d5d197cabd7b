// Timing shared by the `flagstone bench` commands: the median of device-event-timed runs after
// one warm-up, so compiles, first touches and lazy initialization stay out of the numbers.
#pragma once

#include <algorithm>
#include <vector>

#include "flagstone/runtime/device.h"

namespace flagstone::cli {

// Median milliseconds of `repeat` runs of `fn` on `stream`, each between two runtime Events.
template <typename Fn>
double median_ms(const runtime::Device& device, const runtime::Stream& stream, int repeat,
                 Fn&& fn) {
  fn();
  stream.synchronize();
  std::vector<double> times;
  for (int i = 0; i < repeat; ++i) {
    runtime::Event start(device), end(device);
    start.record(stream);
    fn();
    end.record(stream);
    end.synchronize();
    times.push_back(start.elapsed_ms(end));
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace flagstone::cli
