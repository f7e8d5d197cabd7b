#!/bin/bash
# Multi-GPU check of the comm library (issue 7; an nvidia-h200-x2/-x4 machine, one rank per GPU):
# the comm test suite on the NCCL path and with mixed GPU + CPU ranks, then `flagstone bench comm`
# for allreduce, allgather, reducescatter and alltoall with raw NCCL timed in the same run as the
# peer. NVLink multicast stays off (NCCL_NVLS_ENABLE=0). Output: $OUT/comm_multi.txt. Budget: 200 s.
o="$OUT/comm_multi.txt"
b=build-gpu
source tools/gpu/comm_env.inc
ngpu=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')
[ "$ngpu" -ge 1 ] || ngpu=1
gpus=$(seq -s, -f 'cuda:%g' 0 $((ngpu - 1)))
{
  echo "== date $(date -u +%FT%TZ), HEAD $(git rev-parse --short HEAD 2>/dev/null), $ngpu GPUs: $gpus"
  echo "NCCL: ${FLAGSTONE_NCCL_LIBRARY:-libnccl.so.2 from the loader path}"
  nvidia-smi topo -m 2>&1 | head -12
  echo "== comm_test: all-CUDA (NCCL) and mixed GPU + CPU + OpenCL ranks"
  FLAGSTONE_COMM_TEST_DEVICES="$gpus;cpu,$gpus;$gpus,cpu,opencl:0" \
    timeout -k 3 70 $b/tests/comm/comm_test --gtest_filter='CommDevices.Configured*' 2>&1 | tail -40
  echo "== comm_test: faults on all-CUDA NCCL groups (watchdog timeout, abort) and cuda:0 + cpu"
  timeout -k 3 60 $b/tests/comm/comm_test --gtest_filter='CommGpuFaults.*' 2>&1 | tail -30
  for op in allreduce allgather reducescatter alltoall; do
    echo "== bench comm --op $op: $ngpu CUDA ranks, ours vs raw NCCL in the same run"
    timeout 22 $b/src/cli/flagstone launch -n "$ngpu" --devices "$gpus" -- $b/src/cli/flagstone \
      bench comm --op $op --device-buffers --nccl-peer --no-mpi -b 8 -e 1G -f 4 -n 20 -w 5 2>&1 | tail -18
  done
  echo "== bench comm: $ngpu CUDA ranks + 1 cpu rank, hierarchical all-reduce with copy bound"
  timeout 25 $b/src/cli/flagstone launch -n $((ngpu + 1)) --devices "$gpus,cpu" -- \
    $b/src/cli/flagstone bench comm --device-buffers --no-mpi -b 1M -e 256M -f 4 -n 5 -w 2 2>&1 | tail -10
} >"$o" 2>&1
