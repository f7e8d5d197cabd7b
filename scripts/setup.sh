#!/usr/bin/env bash
# Installs every Debian 12 package Flagstone needs that is missing (needs root or sudo).
# Safe to run again: it only calls apt-get when something is missing.
set -euo pipefail

PACKAGES=(
  build-essential g++ cmake ninja-build pkg-config git python3
  libgtest-dev libgmock-dev googletest
  nlohmann-json3-dev libcli11-dev
  ocl-icd-opencl-dev opencl-headers pocl-opencl-icd clinfo
  libopenblas-dev libclblast-dev
  libpcre2-dev libutf8proc-dev
  libopenmpi-dev openmpi-bin
  clang clang-format
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
