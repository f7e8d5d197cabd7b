#!/bin/bash
# GPU check of the comm library on the one-GPU machine: every collective on mixed cuda:0, cpu and
# NVIDIA OpenCL ranks (NCCL for the CUDA rank, hierarchical all-reduce through the shm arena and
# through the ring), the fault tests with a CUDA rank, and `flagstone bench comm` hetero all-reduce
# with the host<->device copy bound measured in the same run. Output: $OUT/comm.txt. Budget: 80 s
# (COMM_FULL=1 adds every device mix and the GPU fault tests: 130 s).
o="$OUT/comm.txt"
b=build-gpu
f=$b/src/cli/flagstone
source tools/gpu/comm_env.inc
hetero() { # ranks devices first-size last-size factor [env...]
  local n=$1 devices=$2 lo=$3 hi=$4 factor=$5
  shift 5
  env "$@" timeout 25 $f launch -n "$n" --devices "$devices" -- $f bench comm --device-buffers \
    --no-mpi -b "$lo" -e "$hi" -f "$factor" -n 5 -w 2 2>&1 | grep -v '^\[0\] # flagstone'
}
{
  echo "== date $(date -u +%FT%TZ), HEAD $(git rev-parse --short HEAD 2>/dev/null), $(nproc) cores"
  echo "NCCL: ${FLAGSTONE_NCCL_LIBRARY:-libnccl.so.2 from the loader path}"
  $f info 2>&1 | grep -iE "cuda:0|opencl:0" | head -2
  if [ "${COMM_FULL:-0}" = 1 ]; then
    echo "== comm_test: configured device mixes (NCCL + hierarchical all-reduce, arena from 1 MiB)"
    FLAGSTONE_COMM_TEST_DEVICES="cuda:0,cpu;cpu,opencl:0,cuda:0;cuda:0,cpu,opencl:0,cpu;cuda:0,cuda:0,cpu" \
      timeout -k 3 60 $b/tests/comm/comm_test --gtest_filter='CommDevices.*' 2>&1 | grep -E '^\[ (dev|  |RUN|  OK|  FA|  PA|  SK)|rank' | tail -30
    echo "== comm_test: faults with a CUDA rank (cuda:0 + cpu ranks; killed, hung, aborted peers)"
    timeout -k 3 40 $b/tests/comm/comm_test --gtest_filter='CommGpuFaults.*' 2>&1 | grep -E '^\[ (  OK|  FA|  PA|  SK)|rank|Skip' | tail -20
  fi
  echo "== comm_test: mixes with every all-reduce through the shm arena (64 KiB slots)"
  FLAGSTONE_COMM_ARENA_BYTES=0 FLAGSTONE_COMM_ARENA_SLOT_BYTES=65536 \
    FLAGSTONE_COMM_TEST_DEVICES="cuda:0,cpu;cuda:0,cpu,opencl:0,cpu" \
    timeout -k 3 30 $b/tests/comm/comm_test --gtest_filter='CommDevices.Configured*' 2>&1 | grep -E '^\[ (dev|  OK|  FA|  PA)|rank' | tail -12
  echo "== bench comm: 1 cuda rank on NCCL vs raw NCCL (layer overhead), with and without the watchdog"
  timeout 10 $f launch -n 1 --devices cuda:0 -- $f bench comm --device-buffers --nccl-peer \
    --no-mpi -b 8 -e 64M -f 8 -n 20 -w 3 2>&1 | tail -9
  FLAGSTONE_COMM_NCCL_WATCHDOG=0 timeout 10 $f launch -n 1 --devices cuda:0 -- $f bench comm \
    --device-buffers --nccl-peer --no-mpi -b 8 -e 64M -f 8 -n 20 -w 3 2>&1 | tail -8
  echo "== bench comm: hetero cuda:0 + cpu all-reduce with copy bound (shm arena)"
  hetero 2 cuda:0,cpu 1M 256M 4
  echo "== bench comm: hetero cuda:0 + cpu + cpu all-reduce with copy bound"
  hetero 3 cuda:0,cpu,cpu 16M 256M 16
  echo "== bench comm: 2 and 4 cpu ranks (the host exchange alone), no MPI on this machine"
  timeout 12 $f bench comm --nranks 2 --no-mpi -b 1M -e 256M -f 4 -n 5 -w 2 2>&1 | tail -5
  timeout 12 $f bench comm --nranks 4 --no-mpi -b 256M -e 256M -n 5 -w 2 2>&1 | tail -1
} >"$o" 2>&1
