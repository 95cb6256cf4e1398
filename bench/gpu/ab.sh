#!/usr/bin/env bash
# A/B of knob settings of one build, in one GPU call: every variant timed AB_PASSES times,
# interleaved (pass 1 of each, then pass 2 of each, ...), then PyTorch's FA2 on the same shapes,
# then the table (abtable.mjs: median over passes, ratio to FA2). Assumes
# `source .device/node-env.sh` ran; logs land in $OUT (or ./gpu-out).
#   bench/gpu/ab.sh 'label A' 'ENV=value ...' 'label B' 'ENV=value ...' ...
# AB_ARGS passes options to bench.mjs (default: --dtype bfloat16), AB_PASSES (default 2).
set -uo pipefail
out=${OUT:-gpu-out}
mkdir -p "$out"
args=${AB_ARGS:---dtype bfloat16}
for pass in $(seq 1 "${AB_PASSES:-2}"); do
  i=0; labels=("$@")
  while [ $i -lt ${#labels[@]} ]; do
    label=${labels[$i]}; envs=${labels[$((i + 1))]}; i=$((i + 2))
    echo "== pass $pass: $label ($envs) t=${SECONDS}s"
    env $envs node bench/gpu/bench.mjs --out "$out/ab.jsonl" --append --impl "flashattn $label" --no-e2e $args >> "$out/ab.log" 2>&1 || echo "bench failed: $label"
  done
done
echo "== torch peers t=${SECONDS}s"
node bench/gpu/shapes.mjs --json $args | TORCH_SKIP_CUDNN=1 timeout ${TORCH_S:-150} python3 bench/gpu/torch_bench.py > "$out/torch.jsonl" 2> "$out/torch.log"
echo "torch exit $?"
node bench/gpu/abtable.mjs "$out/ab.jsonl" "$out/torch.jsonl" | tee "$out/ab-table.md"
