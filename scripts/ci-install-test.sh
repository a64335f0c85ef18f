#!/usr/bin/env bash
# Checks that attn works as an installed package, the way a user consumes it:
#   1. configure + build the library (and the attn command) in a temp dir,
#   2. cmake --install it into a temporary prefix,
#   3. configure + build tests/install/consumer, an outside project that only
#      does find_package(attn) and links attn::attn, against that prefix,
#   4. run the consumer and the installed `attn` command;
#   5. configure + build tests/subdir-consumer, an outside project that adds
#      attn's source tree with add_subdirectory (no build type): it fails to
#      configure if attn defines anything but its library there (tests,
#      benchmarks, tools, examples) or changes the parent's build type; its
#      install must install nothing of attn.
# Usage: scripts/ci-install-test.sh        (from anywhere; needs scripts/setup.sh's packages)
# Set ATTN_KEEP_TMP=1 to keep the temporary directory for inspection.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/attn-install-test.XXXXXX")"
if [ "${ATTN_KEEP_TMP:-0}" = 1 ]; then
  echo "install-test: keeping $tmp"
else
  trap 'rm -rf "$tmp"' EXIT
fi
jobs="${ATTN_JOBS:-2}"
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)

echo "== install-test: build the library in $tmp/build"
cmake -S "$repo" -B "$tmp/build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
      -DATTN_BUILD_TESTS=OFF -DATTN_BUILD_EXAMPLES=OFF -DATTN_BUILD_BENCH=OFF -DATTN_BUILD_TOOLS=ON
cmake --build "$tmp/build" -j"$jobs"

echo "== install-test: install into $tmp/prefix"
cmake --install "$tmp/build" --prefix "$tmp/prefix"
for f in include/attn/attn.hpp bin/attn; do
  [ -e "$tmp/prefix/$f" ] || { echo "install-test: $f was not installed" >&2; exit 1; }
done
config="$(find "$tmp/prefix" -name attnConfig.cmake | head -n1)"
[ -n "$config" ] || { echo "install-test: attnConfig.cmake was not installed" >&2; exit 1; }
echo "install-test: package config at ${config#"$tmp/prefix/"}"

echo "== install-test: build the outside consumer against the installed package"
cmake -S "$repo/tests/install/consumer" -B "$tmp/consumer" "${generator[@]}" \
      -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$tmp/prefix"
cmake --build "$tmp/consumer" -j"$jobs"

echo "== install-test: run the consumer and the installed attn command"
"$tmp/consumer/consumer"
"$tmp/prefix/bin/attn" --version
"$tmp/prefix/bin/attn" demo | grep -E '^z2 +0\.4419 +0\.6515 +0\.5683$'
echo "== install-test: add_subdirectory(attn) from an outside project"
cmake -S "$repo/tests/subdir-consumer" -B "$tmp/subdir" "${generator[@]}" -DATTN_SOURCE_DIR="$repo"
cmake --build "$tmp/subdir" -j"$jobs"
"$tmp/subdir/consumer"
cmake --install "$tmp/subdir" --prefix "$tmp/subdir-prefix" >/dev/null
if [ -d "$tmp/subdir-prefix" ] && [ -n "$(find "$tmp/subdir-prefix" -type f)" ]; then
  echo "install-test: installing the add_subdirectory consumer installed attn's files:" >&2
  find "$tmp/subdir-prefix" -type f >&2
  exit 1
fi
echo "install-test: ok"
