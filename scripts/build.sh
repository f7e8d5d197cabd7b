#!/usr/bin/env bash
# Configures and builds Flagstone into build/ (or $FLAGSTONE_BUILD_DIR) with Ninja.
# Extra arguments go to cmake, e.g. scripts/build.sh -DFLAGSTONE_CUDA=OFF
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${FLAGSTONE_BUILD_DIR:-build}
if [ -d /usr/local/cuda/bin ]; then export PATH="/usr/local/cuda/bin:$PATH"; fi
JOBS=${FLAGSTONE_JOBS:-$(nproc)}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="${FLAGSTONE_BUILD_TYPE:-Release}" \
  -DFLAGSTONE_WERROR=ON "$@"
cmake --build "$BUILD_DIR" -j "$JOBS"
