#!/bin/bash
# GPU check of the comm library on the one-GPU machine: every collective on mixed cuda:0, cpu and
# NVIDIA OpenCL ranks (2, 3 and 4 ranks; NCCL for the CUDA rank, hierarchical all-reduce), the
# same-GPU fallback, and `flagstone bench comm` hetero all-reduce with the host<->device copy
# bound measured in the same run. Output: $OUT/comm.txt. Budget: 150 s.
o="$OUT/comm.txt"
b=build-gpu
export NCCL_NVLS_ENABLE=0
mkdir -p /tmp/icd && echo libnvidia-opencl.so.1 >/tmp/icd/nvidia.icd
export OCL_ICD_VENDORS=/tmp/icd
# libnccl.so.2: the loader path, else the copy that ships with PyTorch's wheels.
if ! ldconfig -p 2>/dev/null | grep -q 'libnccl.so.2'; then
  lib=$(timeout 10 find /usr/local/lib /usr/lib /opt /usr/local/cuda -name 'libnccl.so.2' 2>/dev/null | head -1)
  [ -n "$lib" ] && export FLAGSTONE_NCCL_LIBRARY="$lib"
fi
{
  echo "== date $(date -u +%FT%TZ), HEAD $(git rev-parse --short HEAD 2>/dev/null)"
  echo "NCCL: ${FLAGSTONE_NCCL_LIBRARY:-libnccl.so.2 from the loader path}"
  $b/src/cli/flagstone info 2>&1 | grep -iE "cuda|opencl|nvidia" | head -8
  echo "== comm_test: configured device mixes (NCCL + hierarchical all-reduce, staging)"
  FLAGSTONE_COMM_TEST_DEVICES="cuda:0,cpu;cpu,opencl:0,cuda:0;cuda:0,cpu,opencl:0,cpu;cuda:0,cuda:0,cpu" \
    timeout -k 3 85 $b/tests/comm/comm_test --gtest_filter='CommDevices.*' 2>&1 | tail -60
  echo "== bench comm: 1 cuda rank on NCCL vs raw NCCL (layer overhead)"
  timeout 15 $b/src/cli/flagstone launch -n 1 --devices cuda:0 -- $b/src/cli/flagstone bench comm \
    --device-buffers --nccl-peer --no-mpi -b 8 -e 64M -f 8 -n 20 -w 3 2>&1 | tail -12
  echo "== bench comm: hetero cuda:0 + cpu all-reduce with copy bound"
  timeout 30 $b/src/cli/flagstone launch -n 2 --devices cuda:0,cpu -- $b/src/cli/flagstone bench \
    comm --device-buffers --no-mpi -b 1M -e 256M -f 4 -n 5 -w 2 2>&1 | tail -12
  echo "== bench comm: hetero cuda:0 + cpu at 256 MiB, no spinning / 16 MiB staging chunks"
  FLAGSTONE_COMM_SPIN_US=0 timeout 12 $b/src/cli/flagstone launch -n 2 --devices cuda:0,cpu -- \
    $b/src/cli/flagstone bench comm --device-buffers --no-mpi -b 256M -e 256M -n 5 -w 2 2>&1 | tail -1
  FLAGSTONE_COMM_STAGE_BYTES=16777216 timeout 12 $b/src/cli/flagstone launch -n 2 --devices \
    cuda:0,cpu -- $b/src/cli/flagstone bench comm --device-buffers --no-mpi -b 256M -e 256M -n 5 \
    -w 2 2>&1 | tail -1
  echo "== bench comm: 2 cpu ranks (the host part alone), no MPI on this machine"
  timeout 20 $b/src/cli/flagstone bench comm --nranks 2 --no-mpi -b 1M -e 256M -f 4 -n 5 -w 2 2>&1 | tail -6
  echo "== bench comm: hetero cuda:0 + cpu + cpu all-reduce with copy bound"
  timeout 15 $b/src/cli/flagstone launch -n 3 --devices cuda:0,cpu,cpu -- $b/src/cli/flagstone \
    bench comm --device-buffers --no-mpi -b 16M -e 256M -f 16 -n 5 -w 2 2>&1 | tail -8
} >"$o" 2>&1
