// tools/attn/progress.hpp — the progress line of long-running subcommands
// (`attn train`, `attn generate`): on a terminal a bar redrawn in place, in a
// log file ten plain lines; nothing at all with --json.
#pragma once

#include <unistd.h>  // isatty

#include <algorithm>
#include <cstdint>
#include <iostream>
#include <string>

#include "print.hpp"

namespace attn::cli {

class Progress {
 public:
  explicit Progress(int64_t total, bool quiet) : total_(total), tty_(isatty(STDERR_FILENO) != 0), quiet_(quiet) {}
  void update(int64_t step, float loss, double tokens_per_s) {
    if (quiet_) return;
    const bool last = step == total_;
    if (tty_) {
      if (step % 5 != 0 && !last) return;
      const int width = 30, filled = static_cast<int>(width * step / std::max<int64_t>(total_, 1));
      std::cerr << "\r[" << std::string(static_cast<size_t>(filled), '#') << std::string(static_cast<size_t>(width - filled), '.')
                << "] step " << step << "/" << total_ << "  loss " << num(loss) << "  " << num(tokens_per_s, 0)
                << " tokens/s   " << (last ? "\n" : "") << std::flush;
    } else if (last || step % std::max<int64_t>(total_ / 10, 1) == 0) {  // a log file gets 10 lines
      std::cerr << "step " << step << "/" << total_ << "  loss " << num(loss) << "  " << num(tokens_per_s, 0)
                << " tokens/s\n";
    }
  }

 private:
  int64_t total_;
  bool tty_, quiet_;
};

}  // namespace attn::cli
