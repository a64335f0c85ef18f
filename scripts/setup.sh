#!/usr/bin/env bash
# Installs what attn needs on a fresh Debian/Ubuntu machine. Idempotent: when
# everything is present it only checks and returns.
#   ./scripts/setup.sh            build + test dependencies (Debian packages)
#   ./scripts/setup.sh --golden   also PyTorch from PyPI (only to regenerate golden data)
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  googletest libgtest-dev libgmock-dev libbenchmark-dev  # tests, benchmarks
  libhwy-dev                                             # Google Highway: portable SIMD, run-time dispatch
  nlohmann-json3-dev                                     # the safetensors header is JSON
  libcli11-dev                                           # the attn command's argument parser
  libopenblas-dev                                        # BLAS for large matrix products
  libcairo2-dev                                          # pictures (heatmaps, plots)
  chromium chromium-driver                               # attn view's page, tested in headless Chromium (Selenium)
  clang libclang-rt-dev                                  # the fuzz preset: libFuzzer (-fsanitize=fuzzer), FuzzedDataProvider.h
  python3 python3-pip
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "${1:-}" = "--golden" ]; then
  python3 -c "import torch" 2>/dev/null || python3 -m pip install --quiet torch numpy
fi
echo "setup: ok"
