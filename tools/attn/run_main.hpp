// tools/attn/run_main.hpp — the `attn` command as a function (cli_main.cpp).
#pragma once

namespace attn::cli {

/// Parses argv (argv[0] is the program name) and runs the subcommand, printing
/// to std::cout / std::cerr as the `attn` executable does; returns its exit
/// code: 0 success, 1 the command failed, 2 a usage error. Reentrant: each call
/// builds its own parser, so it can be called again in the same process.
int run_main(int argc, char** argv);

}  // namespace attn::cli
