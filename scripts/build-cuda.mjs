#!/usr/bin/env node
// Builds the CUDA addon (build/Release/flashattn_cuda.node) with cmake-js.
//
//   node scripts/build-cuda.mjs            best effort: no CUDA compiler -> one line, exit 0;
//                                           a failed build -> a warning, exit 0 (wasm still works)
//   node scripts/build-cuda.mjs --force    clean rebuild; any failure exits non-zero
//   --ptxas-verbose                        print ptxas register/spill reports
import { spawnSync } from 'node:child_process';
import { existsSync, accessSync, constants, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = new Set(process.argv.slice(2));
const force = args.has('--force');

function onPath(name) {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const p = path.join(dir, name);
    try { accessSync(p, constants.X_OK); return p; } catch { /* not here */ }
  }
  return null;
}

function fail(message) {
  if (force) {
    console.error(`flashattn: CUDA addon build failed: ${message}`);
    process.exit(1);
  }
  console.warn(`flashattn: CUDA addon not built (${message}); the WebAssembly engine is used instead`);
  process.exit(0);
}

const nvcc = process.env.CUDACXX && existsSync(process.env.CUDACXX) ? process.env.CUDACXX
  : onPath('nvcc') ?? (existsSync('/usr/local/cuda/bin/nvcc') ? '/usr/local/cuda/bin/nvcc' : null);
if (!nvcc) {
  if (force) fail('no CUDA compiler found (nvcc on PATH or /usr/local/cuda/bin/nvcc)');
  console.log('flashattn: no CUDA compiler found (nvcc on PATH or /usr/local/cuda/bin/nvcc); skipping the CUDA addon');
  process.exit(0);
}
if (!onPath('cmake')) fail('cmake is not on PATH');

let cmakeJs;
try {
  cmakeJs = path.join(path.dirname(createRequire(import.meta.url).resolve('cmake-js/package.json')), 'bin', 'cmake-js');
} catch {
  fail('cmake-js is not installed (it is a devDependency: run npm install)');
}

// CMake works in build/cuda (only that folder is cleaned by --force: build/ also holds the wasm
// engine's output); CMakeLists.txt puts the addon itself in build/Release.
const work = path.join(root, 'build', 'cuda');
if (force) rmSync(work, { recursive: true, force: true });
const cmd = [cmakeJs, 'build', '--directory', root, '--out', work];
if (args.has('--ptxas-verbose')) cmd.push('--CDFLASHATTN_PTXAS_VERBOSE=ON');
const env = {
  ...process.env,
  CUDACXX: nvcc,
  CMAKE_BUILD_PARALLEL_LEVEL: process.env.CMAKE_BUILD_PARALLEL_LEVEL ?? String(os.availableParallelism?.() ?? os.cpus().length),
};
const started = Date.now();
const r = spawnSync(process.execPath, cmd, { cwd: root, env, stdio: 'inherit' });
if (r.error) fail(r.error.message);
if (r.status !== 0) fail(`cmake-js exited with status ${r.status}`);
const out = path.join(root, 'build', 'Release', 'flashattn_cuda.node');
if (!existsSync(out)) fail(`${out} was not produced`);
console.log(`flashattn: built ${path.relative(root, out)} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
