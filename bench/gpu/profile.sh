#!/usr/bin/env bash
# Nsight Compute on one shape: this engine's kernel and FlashAttention-2's (PyTorch sdpa FLASH),
# the same sections for both, side by side in $OUT/ncu-*.txt. Assumes `source .device/node-env.sh`.
#   bench/gpu/profile.sh BATCH SEQLEN HEADS HEADDIM [causal]    (bf16; shape name as in shapes.mjs)
set -uo pipefail
out=${OUT:-gpu-out}; mkdir -p "$out"
b=$1 s=$2 h=$3 d=$4 mode=${5:-full}
name="dense d$d $mode $s"
sections="--section SpeedOfLight --section LaunchStats --section Occupancy --section SchedulerStats --section WarpStateStats --section InstructionStats --section MemoryWorkloadAnalysis --section ComputeWorkloadAnalysis"
ncu --clock-control none -k regex:fwdKernel --launch-skip 3 --launch-count 1 $sections \
  node bench/gpu/bench.mjs --match "^$name\$" --dtype bfloat16 --iters 1 --no-e2e > "$out/ncu-ours.txt" 2>&1
echo "ncu ours exit $?"
ncu --clock-control none -k regex:flash_fwd --launch-skip 2 --launch-count 1 $sections \
  python3 bench/gpu/peer_once.py "$b" "$s" "$h" "$d" ${5:-} > "$out/ncu-fa2.txt" 2>&1
echo "ncu fa2 exit $?"
