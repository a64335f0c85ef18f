// fuzz/cli_fuzzer.cpp — libFuzzer harness for the `attn` command line, run
// in-process through attn::cli::run_main (tools/attn/cli_main.cpp), the very
// function the executable's main() calls.
//
// The input bytes build an argv: a subcommand (a real one, a misspelt one,
// or an option such as --help), then a few options drawn from that
// subcommand's dictionary below (sometimes another subcommand's, or garbage),
// each with a value of its kind — small numbers, bad numbers ("-1", "abc",
// "99999999999999999999"), choices and non-choices, texts (the fuzzer's own
// bytes too), existing fixture files (tests/golden, tools/attn/testdata) and
// output file names. Checked for every argv:
//   * no crash, no sanitizer report, no exception escaping run_main;
//   * the exit code is 0, 1 (the command failed) or 2 (usage error);
//   * nothing reached run_main's catch-all "unexpected error": every failure
//     a user can cause is a typed attn::Error or a usage error (DESIGN.md).
// The command runs in a temporary directory (ATTN_FUZZ_WORKDIR or a fresh one
// under $TMPDIR) that is emptied after each input; file values are relative
// names, or the fixtures' absolute paths, never anything else, so nothing is
// written outside it. Output goes to a buffer, not the terminal;
// ATTN_FUZZ_PRINT=1 prints each argv and its exit code instead.
//
// Bounded work. train, generate, why and bench take sizes and step counts
// that make a run last minutes at their defaults; libFuzzer needs
// milliseconds. For those the harness draws only small values (or values the
// parser must reject) and puts small ones the fuzzer did not give right
// after the subcommand (e.g. `--steps 1`; `why` always gets --quick): see the
// WorkInt options and their fill values below.
// Their bounds (tools/attn/limits_tests.cmake): each WorkInt also carries
// the parser's upper limit, and a quarter of its values are past it (just
// past, or a power of two above): such a command line must be refused as a
// usage error (exit 2) before any work starts.
// --step (demo) is never drawn: it waits for Enter when stdin is a terminal,
// as it is when a developer runs this fuzzer by hand.
#include <fuzzer/FuzzedDataProvider.h>

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "fuzz_util.hpp"
#include "run_main.hpp"

#ifndef ATTN_SOURCE_DIR
#error "ATTN_SOURCE_DIR (the repository root) must be defined by fuzz/CMakeLists.txt"
#endif

namespace {

namespace fs = std::filesystem;
using attn_fuzz::fuzz_fail;

enum class Kind {
  Flag,      // no value
  Int,       // any integer (cheap options: seeds, indices, params' sizes)
  WorkInt,   // an amount of work: [lo, cap] or a value the parser rejects
  Real,      // a number
  Choice,    // one of `choices`, or not
  Text,      // words; the fuzzer's bytes too
  InFile,    // an existing file or directory (fixtures), or a missing one
  OutFile,   // a file to write, relative to the working directory
};

struct Option {
  const char* name;
  Kind kind;
  int64_t lo = 0, cap = 0;  // WorkInt: drawn in [lo, cap]
  int64_t fill = -1;        // WorkInt: appended with this value when not drawn (−1: its default is small)
  int64_t bound = 0;        // WorkInt: the largest value the parser accepts (0: none checked here)
  std::vector<const char*> choices = {};
};

struct Subcommand {
  const char* name;
  std::vector<Option> options;
  bool positional_texts = false;  // embed TEXT...
};

// What each subcommand takes (tools/attn/*.cpp setup_* functions).
const std::vector<Subcommand>& subcommands() {
  static const std::vector<Subcommand> kSubcommands = {
      {"demo",
       {{"--json", Kind::Flag}, {"--overflow-factor", Kind::Real}, {"--text", Kind::Text}, {"--plot", Kind::OutFile}}},
      {"params",
       {{"--model", Kind::Choice, 0, 0, -1, 0, {"gpt3", "gpt2", "deepseek-v2", "deepseek-67b"}},
        {"--d-model", Kind::Int}, {"--heads", Kind::Int}, {"--head-dim", Kind::Int}, {"--layers", Kind::Int},
        {"--kv-heads", Kind::Int}, {"--latent-dim", Kind::Int}, {"--rope-dim", Kind::Int},
        {"--q-latent-dim", Kind::Int}, {"--dtype-bytes", Kind::Int}, {"--json", Kind::Flag}}},
      {"heatmap",
       {{"--out", Kind::OutFile}, {"--text", Kind::Text}, {"--causal", Kind::Flag}, {"--heads", Kind::WorkInt, 1, 4, -1, 16},
        {"--seed", Kind::Int}, {"--weights", Kind::InFile}, {"--model", Kind::InFile}, {"--layer", Kind::Int},
        {"--head", Kind::Int}, {"--json", Kind::Flag}}},
      {"embed", {{"--model", Kind::InFile}, {"--json", Kind::Flag}, {"--batch-size", Kind::Int}}, true},
      {"bench",
       {{"--batch", Kind::WorkInt, 1, 2, 1, 1048576}, {"--heads", Kind::WorkInt, 1, 4, 2, 1048576}, {"--kv-heads", Kind::WorkInt, 1, 4, -1, 1048576},
        {"--len", Kind::WorkInt, 1, 24, 8, 1048576}, {"--q-len", Kind::WorkInt, 1, 24, -1, 1048576}, {"--k-len", Kind::WorkInt, 1, 24, -1, 1048576},
        {"--dim", Kind::WorkInt, 1, 16, 8, 1048576}, {"--causal", Kind::Flag},
        {"--dtype", Kind::Choice, 0, 0, -1, 0, {"float", "double"}}, {"--threads", Kind::WorkInt, 1, 3, -1, 1024},
        {"--repeats", Kind::WorkInt, 1, 2, 1, 10000}, {"--warmup", Kind::WorkInt, 0, 1, 0, 10000}, {"--seed", Kind::Int},
        {"--no-backward", Kind::Flag}, {"--json", Kind::Flag},
        {"--layout", Kind::Choice, 0, 0, -1, 0, {"bhsd", "bshd"}},
        {"--mask", Kind::Choice, 0, 0, -1, 0, {"none", "key-padding:1", "key-padding:0", "key-padding:30", "key-padding:-1",
                                        "key-padding:", "key-padding:x"}},
        {"--backend", Kind::Choice, 0, 0, -1, 0, {"auto", "reference", "fast"}}}},
      {"train",
       {{"--steps", Kind::WorkInt, 1, 2, 1, 1000000}, {"--seed", Kind::Int}, {"--batch", Kind::WorkInt, 1, 4, 2, 4096},
        {"--d-model", Kind::WorkInt, 1, 8, 4, 1024}, {"--heads", Kind::WorkInt, 1, 4, 2, 64}, {"--lr", Kind::Real},
        {"--out-dir", Kind::OutFile}, {"--json", Kind::Flag}}},
      {"generate",
       {{"--prompt", Kind::Text}, {"--tokens", Kind::WorkInt, 1, 6, 4, 100000}, {"--steps", Kind::WorkInt, 1, 2, 1, 1000000},
        {"--layers", Kind::WorkInt, 1, 2, 1, 64}, {"--d-model", Kind::WorkInt, 2, 16, 8, 4096}, {"--heads", Kind::WorkInt, 1, 4, 2, 256},
        {"--kv-heads", Kind::WorkInt, 1, 4, -1, 256}, {"--context", Kind::WorkInt, 2, 12, 8, 4096}, {"--batch", Kind::WorkInt, 1, 2, 1, 4096},
        {"--lr", Kind::Real}, {"--temperature", Kind::Real}, {"--top-k", Kind::Int}, {"--seed", Kind::Int},
        {"--cache", Kind::Choice, 0, 0, -1, 0, {"float32", "bfloat16", "int8"}}, {"--page-size", Kind::WorkInt, 0, 8, -1, 65536},
        {"--save", Kind::OutFile}, {"--load", Kind::InFile}, {"--json", Kind::Flag}}},
      // --quick always (a full `why` trains for minutes); see the file comment.
      {"why",
       {{"--quick", Kind::Flag}, {"--out-dir", Kind::OutFile}, {"--seed", Kind::Int}, {"--steps", Kind::WorkInt, 1, 2, 1, 1000000},
        {"--json", Kind::Flag}}},
  };
  return kSubcommands;
}

// Inputs and outputs. Fixtures are absolute paths into the source tree (read
// only); outputs are relative to the working directory.
const std::vector<std::string>& in_files() {
  static const std::vector<std::string> kFiles = {
      ATTN_SOURCE_DIR "/tests/golden/bert_tiny",  // a real (tiny) BERT directory
      ATTN_SOURCE_DIR "/tools/attn/testdata/bert_truncated",
      ATTN_SOURCE_DIR "/tools/attn/testdata/bert_not_bert",
      ATTN_SOURCE_DIR "/tools/attn/testdata/heatmap_weights.safetensors",
      ATTN_SOURCE_DIR "/tests/golden/safetensors_fixture.safetensors",
      ATTN_SOURCE_DIR "/tests/golden/bert_tiny/model.safetensors",
      ATTN_SOURCE_DIR "/tests/golden/bert_tiny/vocab.txt",
      "missing.safetensors",
      "w.safetensors",  // what --save writes, when an earlier option of this argv wrote it
      ".",
  };
  return kFiles;
}
const std::vector<std::string> kOutFiles = {"out.png", "out.svg", "OUT.PNG", "out.txt", "out", "sub/out.png",
                                            "w.safetensors", "d", ".", "", "out.png/"};
const std::vector<std::string> kTexts = {
    "Your journey starts with one step", "the cat sat on the mat", "hello", "", " ", "a b c d e f g h i j k l m n",
    "unbelievable résumé naïve café", "[CLS] [SEP] [PAD] [UNK] [MASK]", "it it it it", "ÿ\xc3\x28 \xf0\x9f\x98\x80"};
const std::vector<std::string> kBadNumbers = {"-1", "0", "abc", "", "99999999999999999999", "1.5", "-0", "nan",
                                              "inf", "0x10", " 3"};

// Keeps a value inside the working directory: no absolute paths, no "..".
std::string confined(std::string s) {
  while (!s.empty() && s[0] == '/') s.erase(0, 1);
  for (size_t p; (p = s.find("..")) != std::string::npos;) s.replace(p, 2, "__");
  return s;
}

std::string int_value(FuzzedDataProvider& in) {
  switch (in.ConsumeIntegralInRange<int>(0, 3)) {
    case 0: return std::to_string(in.ConsumeIntegralInRange<int64_t>(-2, 40));
    case 1: return std::to_string(in.ConsumeIntegral<int64_t>());
    case 2: return std::to_string(int64_t{1} << in.ConsumeIntegralInRange<int>(0, 62));
    default: return kBadNumbers[in.ConsumeIntegralInRange<size_t>(0, kBadNumbers.size() - 1)];
  }
}

// Set when a WorkInt value past its bound was drawn for the current input.
bool g_past_bound = false;

std::string value_for(FuzzedDataProvider& in, const Option& o) {
  switch (o.kind) {
    case Kind::Flag:
      return "";
    case Kind::Int:
      return int_value(in);
    case Kind::WorkInt:
      // Small, or something the parser must refuse (never a large valid value).
      switch (in.ConsumeIntegralInRange<int>(0, 7)) {
        default: return std::to_string(in.ConsumeIntegralInRange<int64_t>(o.lo, o.cap));
        case 6: return kBadNumbers[in.ConsumeIntegralInRange<size_t>(0, kBadNumbers.size() - 1)];
        case 7: {  // past the bound: just past it, or a power of two above it
          if (o.bound <= 0) return std::to_string(in.ConsumeIntegralInRange<int64_t>(o.lo, o.cap));
          g_past_bound = true;
          if (in.ConsumeBool()) return std::to_string(o.bound + in.ConsumeIntegralInRange<int64_t>(1, 3));
          int k = 0;
          while ((int64_t{1} << k) <= o.bound) ++k;
          return std::to_string(int64_t{1} << in.ConsumeIntegralInRange<int>(k, 62));
        }
      }
    case Kind::Real:
      switch (in.ConsumeIntegralInRange<int>(0, 2)) {
        case 0: return std::to_string(in.ConsumeFloatingPointInRange<double>(-2.0, 2.0));
        case 1: return std::to_string(in.ConsumeFloatingPoint<double>());
        default: return kBadNumbers[in.ConsumeIntegralInRange<size_t>(0, kBadNumbers.size() - 1)];
      }
    case Kind::Choice:
      if (in.ConsumeIntegralInRange<int>(0, 4) != 4) return o.choices[in.ConsumeIntegralInRange<size_t>(0, o.choices.size() - 1)];
      return confined(in.ConsumeRandomLengthString(16));
    case Kind::Text:
      if (in.ConsumeBool()) return kTexts[in.ConsumeIntegralInRange<size_t>(0, kTexts.size() - 1)];
      return in.ConsumeRandomLengthString(64);
    case Kind::InFile:
      if (in.ConsumeIntegralInRange<int>(0, 5) != 5) return in_files()[in.ConsumeIntegralInRange<size_t>(0, in_files().size() - 1)];
      return confined(in.ConsumeRandomLengthString(16));
    case Kind::OutFile:
      if (in.ConsumeIntegralInRange<int>(0, 5) != 5) return kOutFiles[in.ConsumeIntegralInRange<size_t>(0, kOutFiles.size() - 1)];
      return confined(in.ConsumeRandomLengthString(16));
  }
  return "";
}

std::vector<std::string> make_argv(FuzzedDataProvider& in) {
  std::vector<std::string> args = {"attn"};
  const auto& subs = subcommands();
  const int first = in.ConsumeIntegralInRange<int>(0, 15);
  if (first == 15) {  // no subcommand: global options, or a word that is none
    static const char* kGlobal[] = {"--help", "--version", "-h", "", "bogus", "--bogus", "demox", "-"};
    args.push_back(kGlobal[in.ConsumeIntegralInRange<size_t>(0, std::size(kGlobal) - 1)]);
    if (in.ConsumeBool()) args.push_back(subs[in.ConsumeIntegralInRange<size_t>(0, subs.size() - 1)].name);
    return args;
  }
  const Subcommand* picked = &subs[static_cast<size_t>(first) % subs.size()];
  // `why` even with --quick trains two models and evaluates them: ~3 s here,
  // 50 times the other subcommands. Drawn a quarter as often, so it does not
  // take most of a run's time.
  if (std::string(picked->name) == "why" && in.ConsumeIntegralInRange<int>(0, 3) != 3) picked = &subs[1];
  const Subcommand& sub = *picked;
  args.push_back(sub.name);
  const size_t options_start = args.size();
  std::set<std::string> given;
  const int count = in.ConsumeIntegralInRange<int>(0, 6);
  for (int i = 0; i < count; ++i) {
    // (FuzzedDataProvider gives the low end of a range once the input is
    // used up, so the common choices sit there: an option of this subcommand.)
    const int what = in.ConsumeIntegralInRange<int>(0, 19);
    if (what == 19) {  // --help, or an option of another subcommand, or garbage
      static const char* kStray[] = {"--help", "-h", "--bogus", "--", "-x", "--json=1", "--steps=1"};
      args.push_back(kStray[in.ConsumeIntegralInRange<size_t>(0, std::size(kStray) - 1)]);
      continue;
    }
    if (what == 18 && sub.positional_texts) {
      args.push_back(value_for(in, {"", Kind::Text}));
      continue;
    }
    const Option& o = sub.options[in.ConsumeIntegralInRange<size_t>(0, sub.options.size() - 1)];
    // A work option at most once, so that the appended caps below are the only other source of it.
    if (o.kind == Kind::WorkInt && given.count(o.name)) continue;
    given.insert(o.name);
    args.push_back(o.name);
    if (o.kind != Kind::Flag && in.ConsumeIntegralInRange<int>(0, 15) != 15) args.push_back(value_for(in, o));
  }
  if (sub.positional_texts && in.ConsumeBool()) args.push_back(value_for(in, {"", Kind::Text}));
  // The caps the fuzzer did not give (see the file comment), right after the
  // subcommand: at the end, an option the fuzzer left without its value
  // would swallow them (`why --out-dir --quick` ran the full `why`: 74 s).
  // `why` gets --quick there even when the fuzzer gave it too (a repeated
  // flag is fine; the fuzzer's own may be swallowed).
  std::vector<std::string> caps;
  if (std::string(sub.name) == "why") caps.push_back("--quick");
  for (const Option& o : sub.options)
    if (o.kind == Kind::WorkInt && o.fill >= 0 && !given.count(o.name)) {
      caps.push_back(o.name);
      caps.push_back(std::to_string(o.fill));
    }
  args.insert(args.begin() + static_cast<std::ptrdiff_t>(options_start), caps.begin(), caps.end());
  return args;
}

// The working directory: created once, emptied after each input.
const fs::path& workdir() {
  static const fs::path dir = [] {
    fs::path d;
    if (const char* w = std::getenv("ATTN_FUZZ_WORKDIR"); w != nullptr && *w != '\0') {
      d = w;
      fs::create_directories(d);
    } else {
      std::string tmpl = (fs::temp_directory_path() / "attn-cli-fuzz-XXXXXX").string();
      if (::mkdtemp(tmpl.data()) == nullptr) fuzz_fail("cannot create a working directory in " + tmpl);
      d = tmpl;
    }
    return fs::absolute(d);
  }();
  return dir;
}

void empty_workdir() {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(workdir(), ec)) fs::remove_all(entry.path(), ec);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  g_past_bound = false;
  std::vector<std::string> args = make_argv(in);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  // Capture what the command prints (std::cout and std::cerr; libFuzzer
  // itself writes to the stderr file descriptor, not through std::cerr).
  std::ostringstream out, err;
  std::streambuf* cout_buf = std::cout.rdbuf(out.rdbuf());
  std::streambuf* cerr_buf = std::cerr.rdbuf(err.rdbuf());
  // In the working directory only while the command runs: libFuzzer resolves
  // relative corpus and artifact paths between inputs.
  const fs::path cwd = fs::current_path();
  fs::current_path(workdir());
  const int rc = attn::cli::run_main(static_cast<int>(args.size()), argv.data());
  fs::current_path(cwd);
  std::cout.rdbuf(cout_buf);
  std::cerr.rdbuf(cerr_buf);
  empty_workdir();

  auto command_line = [&] {
    std::string s;
    for (const auto& a : args) s += (s.empty() ? "" : " ") + ("'" + a + "'");
    return s;
  };
  if (std::getenv("ATTN_FUZZ_PRINT") != nullptr)  // see what a corpus exercises: each argv and its exit code
    std::fprintf(stderr, "rc %d: %s\n", rc, command_line().c_str());
  if (rc != 0 && rc != 1 && rc != 2)
    fuzz_fail("exit code " + std::to_string(rc) + " from " + command_line() + "\nstderr:\n" + err.str());
  // A work option past its bound is a usage error, whatever else the line
  // holds — unless it asked for help (CLI11 answers --help before it checks).
  bool asked_help = false;
  for (const auto& a : args) asked_help = asked_help || a == "--help" || a == "-h";
  if (g_past_bound && !asked_help && rc != 2)
    fuzz_fail("a work option past its bound was not refused (exit " + std::to_string(rc) + ") in " + command_line() +
              "\nstderr:\n" + err.str());
  if (err.str().find("unexpected error") != std::string::npos)
    fuzz_fail("an untyped exception reached run_main for " + command_line() + "\nstderr:\n" + err.str());
  return 0;
}
