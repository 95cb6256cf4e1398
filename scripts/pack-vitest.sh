#!/usr/bin/env bash
# Packs the part of node_modules that `node node_modules/vitest/vitest.mjs run` needs into
# .device/vitest.tar.xz, for the GPU machine (no npm, no network there). The closure is walked
# from vitest (and vite, its required peer) over the installed packages: `dependencies`,
# `optionalDependencies` and non-optional `peerDependencies`, each resolved the way Node does
# (nearest node_modules upwards), skipping optional ones that are not installed (other
# platforms' native bindings). Run from anywhere inside the repo; unpack with
#   mkdir -p node_modules && tar -xJf .device/vitest.tar.xz -C node_modules
# (bench/gpu/vitest.sh does that).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
[ -d node_modules/vitest ] || { echo "pack-vitest: node_modules/vitest missing; run npm install first" >&2; exit 1; }
mkdir -p .device
list=$(mktemp)
trap 'rm -f "$list"' EXIT

node - "$root" > "$list" <<'JS'
const fs = require('node:fs');
const path = require('node:path');
const root = process.argv[2];
const nm = path.join(root, 'node_modules');
// Never needed to run the test suites (and big); fail loudly if the walk reaches one.
const banned = /^(onnxruntime-.*|playwright-core|typescript|assemblyscript|binaryen)$/;
const seen = new Set();
function resolve(name, fromDir) {
  for (let d = fromDir; d.startsWith(nm) || d === root; d = path.dirname(d)) {
    const cand = path.join(d, d.endsWith('node_modules') ? '' : 'node_modules', name);
    if (fs.existsSync(path.join(cand, 'package.json'))) return cand;
    if (d === root) break;
  }
  return null;
}
function visit(dir) {
  if (seen.has(dir)) return;
  seen.add(dir);
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
  if (banned.test(pkg.name)) throw new Error(`closure reaches ${pkg.name} (${dir})`);
  const optPeer = pkg.peerDependenciesMeta || {};
  const want = [
    ...Object.keys(pkg.dependencies || {}).map((n) => [n, true]),
    ...Object.keys(pkg.optionalDependencies || {}).map((n) => [n, false]),
    ...Object.keys(pkg.peerDependencies || {}).filter((n) => !optPeer[n]?.optional).map((n) => [n, true]),
  ];
  for (const [name, required] of want) {
    const d = resolve(name, dir);
    if (d) visit(d);
    else if (required) throw new Error(`${pkg.name} needs ${name}, which is not installed`);
  }
}
visit(path.join(nm, 'vitest'));
// A package nested inside another one (a/node_modules/b) is covered by its parent's directory.
const dirs = [...seen].map((d) => path.relative(nm, d)).sort();
const top = dirs.filter((d) => !dirs.some((p) => p !== d && d.startsWith(p + '/node_modules/')));
process.stdout.write(top.join('\n') + '\n');
JS

echo "pack-vitest: $(wc -l < "$list") packages:" $(tr '\n' ' ' < "$list")
# The .bin links point outside the archive's roots; nothing here needs them.
tar -C node_modules --exclude='*/node_modules/.bin' --exclude='*.map' --exclude='*.md' \
    --exclude='*.d.ts' --exclude='*.d.mts' --exclude='*.d.cts' \
    -cf - -T "$list" | xz -T0 -9e > .device/vitest.tar.xz.tmp
mv .device/vitest.tar.xz.tmp .device/vitest.tar.xz
raw=$(du -sc $(sed 's|^|node_modules/|' "$list") | tail -1 | cut -f1)
echo "pack-vitest: .device/vitest.tar.xz $(stat -c %s .device/vitest.tar.xz) bytes ($(du -h .device/vitest.tar.xz | cut -f1); $((raw / 1024)) MiB unpacked before pruning)"
