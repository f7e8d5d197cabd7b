#!/usr/bin/env bash
# The main job: set up, build, then show this machine's devices and a short benchmark of each.
# Usage: scripts/run.sh            (uses every device found; the cpu always)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
BUILD_DIR=${FLAGSTONE_BUILD_DIR:-build}
"$BUILD_DIR/src/cli/flagstone" info
echo
"$BUILD_DIR/src/cli/flagstone" bench devices --size-mib 64 --repeat 5
