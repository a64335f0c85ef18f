// tools/attn/cli_main.cpp — the `attn` command: one CLI11 sub-app per registered
// subcommand (see command.hpp), typed errors turned into exit codes.
//
// A function rather than main() so that more than the executable can run the
// very same command line: main.cpp (the `attn` executable), the Python
// binding's attn.run_command (python -m attn), and the libFuzzer harness
// fuzz/cli_fuzzer.cpp, which calls it many times in one process (so it keeps
// no state between calls: the parser is built afresh each time).
//
//   attn --help | --version
//   attn demo [--json]      the notes' "Your journey starts with one step"
//
// Exit codes: 0 success, 1 the command failed (an attn::Error, a file that
// cannot be read, ...), 2 the command line was wrong (usage error).
#include <algorithm>
#include <exception>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <attn/errors.hpp>

#include "command.hpp"
#include "run_main.hpp"

#ifndef ATTN_VERSION
#define ATTN_VERSION "unknown"
#endif

namespace attn::cli {

int run_main(int argc, char** argv) {
  CLI::App app{
      "attn: attention mechanisms, a readable reference path and a fast path that agree.\n"
      "Run `attn <command> --help` for a command's options.",
      "attn"};
  app.set_version_flag("--version", std::string("attn ") + ATTN_VERSION);
  app.require_subcommand(1);  // `attn` alone is a usage error, like `git` alone

  // Sorted by name so --help lists them the same way whatever the link order.
  auto commands = attn::cli::registry();
  std::sort(commands.begin(), commands.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  std::vector<std::pair<CLI::App*, attn::cli::Run>> subs;
  for (const auto& c : commands) {
    CLI::App* sub = app.add_subcommand(c.name, c.description);
    subs.emplace_back(sub, c.setup(*sub));
  }

  // CLI11 gives each parse error its own code (106, 109, ...); callers and
  // scripts expect one code for "you typed it wrong": 2.
  auto usage_error = [&](const std::string& what) {
    std::cerr << "attn: error: " << what << "\n"
              << "usage: attn [--help] [--version] <command> [options]\n"
              << "commands:";
    for (const auto& c : commands) std::cerr << " " << c.name;
    std::cerr << "\nRun `attn --help` for more information.\n";
    return attn::cli::kExitUsage;
  };

  // An unknown first word would otherwise be reported as "A subcommand is
  // required", which does not name what the user typed.
  if (argc > 1 && argv[1][0] != '-' &&
      std::none_of(commands.begin(), commands.end(), [&](const auto& c) { return c.name == argv[1]; }))
    return usage_error(std::string("unknown command '") + argv[1] + "'");

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {  // --help, --version: print and exit 0
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return usage_error(e.what());
  }

  try {
    for (auto& [sub, run] : subs)
      if (sub->parsed()) return run();
  } catch (const attn::Error& e) {
    std::cerr << "attn: " << e.what() << "\n";
    return attn::cli::kExitFailure;
  } catch (const std::exception& e) {
    std::cerr << "attn: unexpected error: " << e.what() << "\n";
    return attn::cli::kExitFailure;
  }
  return attn::cli::kExitUsage;  // unreachable: require_subcommand(1)
}

}  // namespace attn::cli
