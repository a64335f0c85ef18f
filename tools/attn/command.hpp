// tools/attn/command.hpp — how a subcommand of `attn` plugs into the command.
//
// Each subcommand lives in its own file (demo.cpp, later heatmap.cpp,
// params.cpp, train.cpp, bench.cpp) and registers itself with one line:
//
//   static const attn::cli::Register kDemo{{"demo", "Walk through ...", setup_demo}};
//
// `setup` adds the subcommand's options to the CLI11 sub-app it is given and
// returns the function that runs it once the command line has been parsed
// (options are kept in a shared_ptr that the returned function captures).
// cli_main.cpp never needs editing: tools/attn/CMakeLists.txt globs *.cpp, and
// run_main() builds the parser from the registry.
#pragma once

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace attn::cli {

/// The check of every floating-point option: a finite number in [lo, hi].
/// CLI::Range alone is not enough: it lets NaN through (every comparison
/// with NaN is false), so "--lr nan" would train on NaN. A failed check is a
/// usage error (exit code 2) naming the option.
inline CLI::Validator finite_range(double lo, double hi) {
  return CLI::Validator(
      [lo, hi](std::string& input) -> std::string {
        double v = 0;
        if (!CLI::detail::lexical_cast(input, v)) return "'" + input + "' is not a number";
        if (!std::isfinite(v)) return "'" + input + "' is not a finite number";
        if (v < lo || v > hi) return "'" + input + "' is not in [" + CLI::detail::to_string(lo) + ", " +
                                     CLI::detail::to_string(hi) + "]";
        return "";
      },
      "FLOAT in [" + CLI::detail::to_string(lo) + " - " + CLI::detail::to_string(hi) + "]");
}

/// Runs a parsed subcommand; returns the process exit code (0 = success).
using Run = std::function<int()>;

struct Command {
  std::string name;         ///< as typed: `attn <name>`
  std::string description;  ///< one line, shown by `attn --help`
  std::function<Run(CLI::App& sub)> setup;
};

/// Every registered subcommand. A function-local static, so registration from
/// other files' static initialisers cannot run before it exists.
inline std::vector<Command>& registry() {
  static std::vector<Command> commands;
  return commands;
}

struct Register {
  explicit Register(Command c) { registry().push_back(std::move(c)); }
};

/// Exit codes shared by all subcommands (2 follows the Unix convention for
/// usage errors, as argparse and most shells' builtins do).
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

}  // namespace attn::cli
