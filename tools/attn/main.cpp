// tools/attn/main.cpp — the `attn` executable: the command line is handled by
// attn::cli::run_main (cli_main.cpp), which the Python binding and the fuzzer
// (fuzz/cli_fuzzer.cpp) call too.
#include "run_main.hpp"

int main(int argc, char** argv) { return attn::cli::run_main(argc, argv); }
