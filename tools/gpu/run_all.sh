#!/bin/bash
# Runs the GPU-machine check scripts named on the command line (tools/gpu/<name>.sh), each under
# its own time limit, with the carried build-gpu/ and the environment they expect.
# Usage (from the repo root on the GPU machine): tools/gpu/run_all.sh name[:seconds] ...
set -u
: "${OUT:=/tmp/out}"
mkdir -p "$OUT"
# The build folder was configured in /work/main here: its RPATHs and the tests' data paths point
# there, so the copy of the tree must be reachable under that name too.
if [ "$PWD" != /work/main ] && [ ! -e /work/main ]; then mkdir -p /work && ln -s "$PWD" /work/main; fi
# tools/gpu/pack.sh packed the build here as build-gpu-pack/carry.tar.xz (stripped binaries and
# the Debian libraries the machine may lack).
if [ -f build-gpu-pack/carry.tar.xz ]; then
  sum=$(md5sum <build-gpu-pack/carry.tar.xz)
  if [ "$(cat build-gpu/.pack_md5 2>/dev/null)" != "$sum" ]; then
    rm -rf build-gpu && mkdir -p build-gpu && tar -xJf build-gpu-pack/carry.tar.xz -C build-gpu
    echo "$sum" >build-gpu/.pack_md5
  fi
fi
export LD_LIBRARY_PATH="$PWD/build-gpu/extra-lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
mkdir -p /tmp/icd && echo libnvidia-opencl.so.1 >/tmp/icd/nvidia.icd
export OCL_ICD_VENDORS=/tmp/icd
export FLAGSTONE_CACHE_DIR=/tmp/flagstone-cache
export NCCL_NVLS_ENABLE=0
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >"$OUT/machine.txt" 2>&1
nproc >>"$OUT/machine.txt"
for spec in "$@"; do
  name=${spec%%:*}
  limit=${spec#*:}
  [ "$limit" = "$spec" ] && limit=150
  start=$(date +%s)
  echo "== $name (limit ${limit}s)" >>"$OUT/machine.txt"
  timeout -k 5 "$limit" bash "tools/gpu/$name.sh" >>"$OUT/$name.log" 2>&1
  rc=$?
  echo "   rc=$rc in $(($(date +%s) - start)) s" >>"$OUT/machine.txt"
  # Each script writes $OUT/<name>.txt; its stray stdout/stderr goes to the .log, merged here so
  # that at most one file per script comes back.
  if [ -s "$OUT/$name.log" ]; then
    { echo; echo "== stdout/stderr of tools/gpu/$name.sh"; tail -c 200000 "$OUT/$name.log"; } >>"$OUT/$name.txt"
  fi
  rm -f "$OUT/$name.log"
done
