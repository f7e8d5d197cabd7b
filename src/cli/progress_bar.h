// A one-line progress bar on stderr for long CLI work (loading weights, converting models),
// redrawn in place; callers draw it only when stderr is a terminal.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace flagstone::cli {

// `what` is the verb ("loading"); `unit_done`/`unit_total` are MiB, or 0/0 to leave them out.
inline void draw_progress_bar(const char* what, double fraction, double mib_done, double mib_total,
                              size_t items_done, size_t items_total, const char* items,
                              const std::string& current = {}) {
  const int width = 30;
  if (fraction < 0) fraction = 0;
  if (fraction > 1) fraction = 1;
  int filled = static_cast<int>(fraction * width);
  std::fprintf(stderr, "\r%s [%.*s%*s] %3d%%", what, filled, "##############################",
               width - filled, "", static_cast<int>(fraction * 100));
  if (mib_total > 0) std::fprintf(stderr, "  %.0f/%.0f MiB", mib_done, mib_total);
  std::fprintf(stderr, "  %zu/%zu %s", items_done, items_total, items);
  // Pad the current item so a shorter name fully overwrites a longer one.
  if (!current.empty()) std::fprintf(stderr, "  %-32.32s", current.c_str());
  if (items_done == items_total) std::fprintf(stderr, "\n");
  std::fflush(stderr);
}

}  // namespace flagstone::cli
