#!/usr/bin/env bash
# The vitest suites that touch the CUDA engine, on the GPU machine (no npm there). Run from the
# repo root after `source .device/node-env.sh`, with .device/ (incl. vitest.tar.xz from
# scripts/pack-vitest.sh), dist/, build/Release/ and build/wasm/ carried along:
#   source .device/node-env.sh; bash bench/gpu/vitest.sh [test files...]
# Unpacks the vitest subset into ./node_modules when node_modules/vitest is absent, then runs
# the four suites (or the files given) once; the log goes to $OUT/vitest.txt (OUT defaults to
# ./gpu-out). Exits with vitest's status (124 if VITEST_S seconds, default 540, ran out).
set -uo pipefail
out=${OUT:-gpu-out}
mkdir -p "$out"
if [ ! -f node_modules/vitest/vitest.mjs ]; then
  [ -f .device/vitest.tar.xz ] || { echo "vitest.sh: no node_modules/vitest and no .device/vitest.tar.xz (run scripts/pack-vitest.sh here first)" >&2; exit 2; }
  mkdir -p node_modules
  tar -xJf .device/vitest.tar.xz -C node_modules || { echo "vitest.sh: unpacking .device/vitest.tar.xz failed" >&2; exit 2; }
fi
files=("$@")
[ ${#files[@]} -gt 0 ] || files=(test/cuda-engine.test.ts test/cuda-stream.test.ts test/conformance.test.ts test/cross-engine.test.ts test/engine.test.ts)
echo "== vitest $(node -p "require('./node_modules/vitest/package.json').version") on node $(node --version): ${files[*]}" | tee "$out/vitest.txt"
CI=1 NO_COLOR=1 timeout "${VITEST_S:-540}" node node_modules/vitest/vitest.mjs run --reporter=default "${files[@]}" 2>&1 | tee -a "$out/vitest.txt"
rc=${PIPESTATUS[0]}
echo "== vitest exit $rc" | tee -a "$out/vitest.txt"
exit "$rc"
