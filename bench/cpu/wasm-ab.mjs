#!/usr/bin/env node
// A/B of kernel builds in one process, calls interleaved so that machine noise hits both alike:
//   node [--experimental-wasm-relaxed-simd] bench/cpu/wasm-ab.mjs --simd relaxed --only A,D DIR1 DIR2 ...
// (each DIR from `node scripts/build-wasm.mjs --out DIR`). Prints min and median GFLOP/s per build.
import { createEngineWith } from '../../dist/engine.js';
import { createWasmBackendWith } from '../../dist/wasm/core.js';
import { nodePlatform } from '../../dist/wasm/platform-node.js';
import { WORKLOADS, makeWorkloadData } from '../../dist/cli/bench/workloads.js';

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  if (i < 0) return def;
  const v = args[i + 1];
  args.splice(i, 2);
  return v;
};
const simd = opt('simd', 'auto'),
  only = opt('only', 'A,B,C,D').split(','),
  rounds = Number(opt('rounds', '30'));
const threads = Number(opt('threads', '1'));
const dirs = args;
const engines = [];
for (const dir of dirs) {
  const files = {
    baseline: new URL(`file://${dir}/flashattn.wasm`),
    relaxed: new URL(`file://${dir}/flashattn-relaxed.wasm`),
  };
  engines.push(
    await createEngineWith(
      { wasm: (x) => createWasmBackendWith(nodePlatform, files, { threads: x.threads, simd }) },
      { backend: 'wasm', threads },
    ),
  );
}
for (const w of WORKLOADS.filter((w) => only.includes(w.id))) {
  const d = makeWorkloadData(w);
  const t = (data, shape) => ({ data, shape, dtype: 'float32' });
  const q = t(d.q, [d.totalQ, w.numHeads, w.headDim]),
    k = t(d.k, [d.totalK, w.numKvHeads, w.headDim]);
  const v = t(d.v, [d.totalK, w.numKvHeads, w.headDimV]);
  const opts = { cuSeqlensQ: d.cuSeqlensQ, cuSeqlensK: d.cuSeqlensK, causal: w.causal };
  const times = engines.map(() => []);
  for (const e of engines) for (let i = 0; i < 3; i++) await e.attentionVarlen(q, k, v, opts);
  for (let r = 0; r < rounds; r++) {
    for (const [i, e] of engines.entries()) {
      const t0 = performance.now();
      await e.attentionVarlen(q, k, v, opts);
      times[i].push(performance.now() - t0);
    }
  }
  for (const [i, ts] of times.entries()) {
    ts.sort((a, b) => a - b);
    console.log(
      `${w.id} ${dirs[i]} ${engines[i].info.simd} t=${threads}: best ${(d.flops / ts[0] / 1e6).toFixed(1)} median ${(d.flops / ts[ts.length >> 1] / 1e6).toFixed(1)} GFLOP/s`,
    );
  }
}
for (const e of engines) await e.dispose();
