#!/usr/bin/env bash
# Everything the GPU machine runs in one call: correctness (check.mjs), compute-sanitizer on
# a reduced set, this engine's benchmark, PyTorch's peers on the same shapes, the joined table
# last. Logs and JSON go to $OUT (or ./gpu-out). Assumes `source .device/node-env.sh` ran and
# dist/ and build/Release/ came along.
#   bench/gpu/run.sh [check|sass|sanitize|bench|kv|base|torch|all]...   (default: all)
# base (A/B runs, not part of all): times another build of the addon, BASE_ADDON=path, with
# BASE_ARGS (e.g. --dtype bfloat16), into base.jsonl; the table then has its column.
set -uo pipefail
out=${OUT:-gpu-out}
mkdir -p "$out"
steps=${*:-all}
has() { [[ " $steps " == *" $1 "* || " $steps " == *" all "* ]]; }
export PYTHONUNBUFFERED=1
# At most 8 files come back from the GPU machine: check.log, memcheck.log, racecheck.log,
# bench.log, ours.jsonl, torch.jsonl, torch.log, table.md (an A/B run: base.jsonl, and no
# sanitizer logs).
step() { echo "== $1 (t=${SECONDS}s)"; }
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,power.draw,temperature.gpu --format=csv | tee -a "$out/check.log"

if has check; then
  step check; timeout ${CHECK_S:-150} node --expose-gc bench/gpu/check.mjs 2>&1 | tee -a "$out/check.log" | grep -v '^large ok' | tail -40
fi
if has sass; then
  # Instruction mix of the d128 main kernels (bf16): tensor-core ops, ldmatrix, local memory.
  cuobjdump -sass -arch sm_90 build/Release/flashattn_cuda.node 2>/dev/null | awk '
    /Function :/ { name = $3 } /HMMA/ { h[name]++ } /LDSM/ { s[name]++ } /LDL|STL/ { l[name]++ } /MUFU.EX2/ { e[name]++ }
    END { for (n in h) printf "%-100s HMMA %d LDSM %d EX2 %d local %d\n", n, h[n], s[n], e[n], l[n] }' | sort | tee -a "$out/check.log"
fi
if has sanitize; then
  echo "== compute-sanitizer memcheck with leak check (quick set)"
  timeout ${MEMCHECK_S:-110} compute-sanitizer --tool memcheck --leak-check full node bench/gpu/check.mjs --quick > "$out/memcheck.log" 2>&1
  echo "memcheck exit $?"; grep -E "^check:|ERROR SUMMARY|LEAK SUMMARY|Leaked|Invalid|rror" "$out/memcheck.log" | head -12
  echo "== compute-sanitizer racecheck (shared memory races, tiny set)"
  timeout ${RACECHECK_S:-60} compute-sanitizer --tool racecheck node bench/gpu/check.mjs --quick --tiny > "$out/racecheck.log" 2>&1
  echo "racecheck exit $?"; grep -E "^check:|RACECHECK SUMMARY|ERROR SUMMARY|hazard" "$out/racecheck.log" | head -8
fi
if has bench; then
  step "flashattn benchmark"
  timeout ${BENCH_S:-120} node bench/gpu/bench.mjs --out "$out/ours.jsonl" ${BENCH_ARGS:-} > "$out/bench.log" 2>&1; echo "bench exit $?"; tail -2 "$out/bench.log"
fi
if has kv; then
  step "flashattn KV cache benchmark"
  timeout ${KV_S:-150} node bench/gpu/kvbench.mjs --out "$out/kv.jsonl" ${KV_ARGS:-} > "$out/kv.log" 2>&1; echo "kv exit $?"; tail -2 "$out/kv.log"
fi
if [[ " $steps " == *" base "* ]]; then
  step "flashattn base build ($BASE_ADDON)"
  FLASHATTN_CUDA_ADDON="$BASE_ADDON" timeout ${BASE_S:-120} node bench/gpu/bench.mjs --out "$out/base.jsonl" --impl "flashattn base" --no-e2e ${BASE_ARGS:-} >> "$out/bench.log" 2>&1; echo "base exit $?"; grep "^device" "$out/bench.log" | tail -1
fi
if has torch; then
  step "torch peers"
  node bench/gpu/shapes.mjs --json | timeout ${TORCH_S:-120} python3 bench/gpu/torch_bench.py ${TORCH_ONLY:-} > "$out/torch.jsonl" 2> "$out/torch.log"; echo "torch exit $?"; tail -2 "$out/torch.log"
fi
step table
node bench/gpu/table.mjs "$out/ours.jsonl" "$out/torch.jsonl" "$out/base.jsonl" "$out/kv.jsonl" | tee "$out/table.md"
