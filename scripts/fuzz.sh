#!/usr/bin/env bash
# Builds the libFuzzer harnesses (the `fuzz` preset: clang, ASan + UBSan,
# build/fuzz) and runs each one for SECONDS on its committed corpus,
# fuzz/corpus/<target>/, copied to a temporary directory first (the
# repository is never modified), with fuzz/<target>.dict where there is one.
#   scripts/fuzz.sh            15 s per target (what CI runs: ~1 min in all)
#   scripts/fuzz.sh 3600       a long run: an hour per target
# Environment:
#   ATTN_FUZZ_TARGETS="sdpa cli"  run only these (default: every fuzz/*_fuzzer.cpp)
#   ATTN_FUZZ_KEEP=1              keep the temporary directory: the grown corpora
#                                 (to merge into fuzz/corpus: see fuzz/README.md) and logs
#   ATTN_JOBS                     build parallelism (default 2)
#   extra libFuzzer flags after SECONDS, e.g. scripts/fuzz.sh 60 -only_ascii=1
# Prints, per target, the executions, their rate and the exit status. A crash,
# a sanitizer report, a timeout (30 s on one input), a memory blow-up (2 GB)
# or a failed check makes the script fail; the input that caused it is kept
# under build/fuzz/artifacts/<target>/ and its path printed, to rerun it with
#   build/fuzz/fuzz/<target>_fuzzer build/fuzz/artifacts/<target>/crash-...
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

seconds="${1:-15}"
[ $# -gt 0 ] && shift
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: scripts/fuzz.sh [SECONDS-PER-TARGET] [libFuzzer flags...]" >&2
  exit 2
fi
targets="${ATTN_FUZZ_TARGETS:-$(cd fuzz && ls ./*_fuzzer.cpp | sed 's|^\./||; s|_fuzzer\.cpp$||' | tr '\n' ' ')}"

echo "== fuzz: build (preset fuzz)"
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz -j"${ATTN_JOBS:-2}"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/attn-fuzz.XXXXXX")"
if [ "${ATTN_FUZZ_KEEP:-0}" = 1 ]; then
  echo "fuzz: keeping $tmp"
else
  trap 'rm -rf "$tmp"' EXIT
fi

failed=()
for t in $targets; do
  exe="build/fuzz/fuzz/${t}_fuzzer"
  [ -x "$exe" ] || { echo "fuzz: $exe was not built" >&2; exit 1; }
  mkdir -p "$tmp/$t/corpus" "$tmp/$t/work" "build/fuzz/artifacts/$t"
  if [ -d "fuzz/corpus/$t" ]; then cp -R "fuzz/corpus/$t/." "$tmp/$t/corpus/"; fi
  flags=(-max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1
         -artifact_prefix="$repo/build/fuzz/artifacts/$t/")
  [ -f "fuzz/$t.dict" ] && flags+=(-dict="fuzz/$t.dict")
  # The harnesses that read their input through FuzzedDataProvider need long
  # inputs from the start (each byte is a size, an option or a seed): without
  # this libFuzzer grows the length limit slowly and a short run stays in a few
  # dozen bytes. The safetensors reader's inputs are files: default growth.
  [ "$t" != safetensors ] && flags+=(-len_control=0)
  echo "== fuzz: $t for ${seconds} s"
  rc=0
  # stdin from /dev/null: nothing may wait for a terminal. The CLI fuzzer
  # runs `attn` in $tmp/$t/work (ATTN_FUZZ_WORKDIR).
  ATTN_FUZZ_WORKDIR="$tmp/$t/work" "$exe" "${flags[@]}" "$@" "$tmp/$t/corpus" \
    </dev/null >"$tmp/$t/log" 2>&1 || rc=$?
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$tmp/$t/log" | tail -n1)"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$tmp/$t/log" | tail -n1)"
  corpus="$(find "$tmp/$t/corpus" -type f | wc -l)"
  echo "fuzz: $t: ${execs:-?} execs (${rate:-?}/s), corpus ${corpus} inputs, exit status $rc"
  if [ "$rc" -ne 0 ]; then
    failed+=("$t")
    echo "---- fuzz: $t failed; the end of its log:" >&2
    tail -n 60 "$tmp/$t/log" >&2
    for a in $(grep -o "Test unit written to .*" "$tmp/$t/log" | sed 's/Test unit written to //'); do
      echo "fuzz: $t: reproducer $a  (rerun: $exe $a)" >&2
    done
  fi
done

if ((${#failed[@]})); then
  echo "fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: ok ($targets)"
