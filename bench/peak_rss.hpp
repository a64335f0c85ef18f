// bench/peak_rss.hpp — the peak resident set of this process, for the memory
// figures of bench/flash_memory.cpp and bench/peers/ggml_attention.cpp (Linux).
#pragma once

#include <cstdlib>
#include <fstream>
#include <string>

namespace bench {

/// VmHWM (peak resident set) of this process, in MiB; −1 if unreadable.
inline double peak_rss_mib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::atof(line.c_str() + 6) / 1024.0;
  return -1;
}

/// Lowers VmHWM to the current resident set (5 > /proc/self/clear_refs), so
/// that what came before cannot hide the growth measured next.
inline void reset_peak_rss() { std::ofstream("/proc/self/clear_refs") << "5"; }

}  // namespace bench
