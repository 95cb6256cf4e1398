#!/usr/bin/env node
// Quick GFLOP/s of the wasm engine on the benchmark workloads (from dist/: `npm run build` first).
//   node bench/cpu/wasm-bench.mjs [--threads 1,2] [--only A,B,C,D] [--simd baseline|relaxed|auto] [--time ms]
// Relaxed SIMD on Node 20: node --experimental-wasm-relaxed-simd bench/cpu/wasm-bench.mjs --simd relaxed
// --dir DIR: take the .wasm files from DIR (build them there with build-wasm.mjs --out DIR).
import os from 'node:os';
import { createEngineWith } from '../../dist/engine.js';
import { createWasmBackendWith } from '../../dist/wasm/core.js';
import { nodePlatform } from '../../dist/wasm/platform-node.js';
import { wasmFiles } from '../../dist/wasm/backend.js';
import { WORKLOADS, makeWorkloadData } from '../../dist/cli/bench/workloads.js';

const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : def;
};
const threadsList = arg('threads', '1,2').split(',').map(Number);
const only = arg('only', 'A,B,C,D').split(',');
const timeMs = Number(arg('time', '1500'));
const simd = arg('simd', 'auto');
const dir = arg('dir', '');
const files = dir
  ? { baseline: new URL(`file://${dir}/flashattn.wasm`), relaxed: new URL(`file://${dir}/flashattn-relaxed.wasm`) }
  : wasmFiles;
const createEngine = (o) =>
  createEngineWith({ wasm: (x) => createWasmBackendWith(nodePlatform, files, { threads: x.threads, simd }) }, o);

console.log(
  `# ${new Date().toISOString()} node ${process.version} load ${os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')}`,
);
for (const threads of threadsList) {
  const engine = await createEngine({ backend: 'wasm', threads });
  for (const w of WORKLOADS.filter((w) => only.includes(w.id))) {
    const d = makeWorkloadData(w);
    const t = (data, shape) => ({ data, shape, dtype: 'float32' });
    const q = t(d.q, [d.totalQ, w.numHeads, w.headDim]),
      k = t(d.k, [d.totalK, w.numKvHeads, w.headDim]);
    const v = t(d.v, [d.totalK, w.numKvHeads, w.headDimV]);
    const opts = { cuSeqlensQ: d.cuSeqlensQ, cuSeqlensK: d.cuSeqlensK, causal: w.causal };
    for (let i = 0; i < 3; i++) await engine.attentionVarlen(q, k, v, opts);
    const times = [];
    let spent = 0;
    while ((times.length < 5 || spent < timeMs) && times.length < 200) {
      const t0 = performance.now();
      await engine.attentionVarlen(q, k, v, opts);
      const dt = performance.now() - t0;
      times.push(dt);
      spent += dt;
    }
    times.sort((a, b) => a - b);
    const med = times[times.length >> 1],
      min = times[0];
    console.log(
      `${w.id} ${engine.info.simd} t=${threads}: median ${med.toFixed(2)} ms ${(d.flops / med / 1e6).toFixed(1)} GFLOP/s (best ${(d.flops / min / 1e6).toFixed(1)}) n=${times.length}`,
    );
  }
  await engine.dispose();
}
