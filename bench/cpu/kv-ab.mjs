#!/usr/bin/env node
// A/B of kernel builds on the decode workloads with K and V kept in the engine, calls interleaved in one
// process so that machine noise hits every build and variant alike:
//   node bench/cpu/kv-ab.mjs [--threads 1,2] [--only C,F] [--rounds 40] [--variants flat32,kv32,...] DIR1 DIR2 ...
// (each DIR from `node scripts/build-wasm.mjs --out DIR`; none: build/wasm; DIST=DIR takes the host code from a
// copy of dist/ too, to compare host-side changes). Variants, per dtype (32 or 16):
//   flat: K and V uploaded once (resident, contiguous), q per call (attentionVarlen);
//   kv:   a KV cache of 16-row blocks (shuffled table) holding Lk - 1 keys, the last appended by each call;
//   kvc:  the same with one block per sequence (a contiguous cache through the same call).
// Prints median and best GFLOP/s per build, variant and thread count; outputs are checked against each
// other (every build, thread count and block size gives the same bits per dtype and layout family).
import os from 'node:os';
import { pathToFileURL } from 'node:url';
import { encode } from '../../dist/half.js';
import { WORKLOADS, makeWorkloadData } from '../../dist/cli/bench/workloads.js';
import { kvDecodeLayout, loadDecodeCache } from '../../dist/cli/bench/kvcache.js';

const distDefault = new URL('../../dist/', import.meta.url);

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  if (i < 0) return def;
  const v = args[i + 1];
  args.splice(i, 2);
  return v;
};
const simd = opt('simd', 'auto');
const only = opt('only', 'C').split(',');
const rounds = Number(opt('rounds', '40'));
const threadsList = opt('threads', '1').split(',').map(Number);
const variants = opt('variants', 'flat32,kv32,kv16').split(',');
const dirs = args.length ? args : [new URL('../../build/wasm', import.meta.url).pathname];

console.log(
  `# ${new Date().toISOString()} node ${process.version} load ${os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')}`,
);
console.log(`# ${os.cpus()[0]?.model}, ${os.availableParallelism()} cores; simd ${simd}; ${rounds} rounds`);

async function engineFor(build, threads) {
  const [dist, dir] = build.includes('=') ? build.split('=') : [null, build];
  const base = dist ? pathToFileURL(`${dist}/`) : distDefault;
  const { createEngineWith } = await import(new URL('engine.js', base));
  const { createWasmBackendWith } = await import(new URL('wasm/core.js', base));
  const { nodePlatform } = await import(new URL('wasm/platform-node.js', base));
  const files = {
    baseline: new URL(`file://${dir}/flashattn.wasm`),
    relaxed: new URL(`file://${dir}/flashattn-relaxed.wasm`),
  };
  return createEngineWith(
    { wasm: (x) => createWasmBackendWith(nodePlatform, files, { threads: x.threads, simd }) },
    { backend: 'wasm', threads },
  );
}

/** A call of `variant` on engine e: returns () => Promise<output data>. */
async function setup(e, d, variant, seed = 1234) {
  const w = d.w;
  const dtype = variant.endsWith('16') ? 'float16' : 'float32';
  const kind = variant.replace(/\d+$/, '');
  const as = (x) => (dtype === 'float32' ? x : encode(x, dtype));
  const T = (x, shape) => ({ data: as(x), shape, dtype });
  const q = T(d.q, [d.totalQ, w.numHeads, w.headDim]);
  if (kind === 'flat') {
    const k = await e.upload(T(d.k, [d.totalK, w.numKvHeads, w.headDim]));
    const v = await e.upload(T(d.v, [d.totalK, w.numKvHeads, w.headDimV]));
    const o = { cuSeqlensQ: d.cuSeqlensQ, cuSeqlensK: d.cuSeqlensK, causal: w.causal };
    return async () => (await e.attentionVarlen(q, k, v, o)).out.data;
  }
  const bs = kind === 'kvc' ? Math.max(...w.seqlensK) : 16;
  const { cache, options: o } = await loadDecodeCache(e, d, kvDecodeLayout(d, bs, seed), bs, dtype);
  return async () => (await e.attentionWithKvCache(q, cache, o)).out.data;
}

const same = (a, b) =>
  a.length === b.length &&
  Buffer.compare(
    Buffer.from(a.buffer, a.byteOffset, a.byteLength),
    Buffer.from(b.buffer, b.byteOffset, b.byteLength),
  ) === 0;

for (const w of WORKLOADS.filter((x) => only.includes(x.id))) {
  const d = makeWorkloadData(w);
  const runs = [];
  for (const t of threadsList)
    for (const [bi, dir] of dirs.entries()) {
      const e = await engineFor(dir, t);
      for (const variant of variants)
        runs.push({ t, bi, dir, variant, e, call: await setup(e, d, variant), times: [], out: null });
    }
  for (const r of runs) for (let i = 0; i < 3; i++) r.out = await r.call();
  // bitwise checks: every thread count and build alike per variant (builds may differ: report only)
  for (const r of runs) {
    const ref = runs.find(
      (x) => x.variant.replace(/^kvc|^kv|^flat/, '') === r.variant.replace(/^kvc|^kv|^flat/, '') && x.bi === r.bi,
    );
    if (!same(ref.out, r.out))
      console.log(`! ${w.id} ${r.variant} t=${r.t} ${r.dir}: output differs from ${ref.variant} t=${ref.t}`);
  }
  for (let i = 0; i < rounds; i++)
    for (const r of runs) {
      const t0 = performance.now();
      await r.call();
      r.times.push(performance.now() - t0);
    }
  for (const r of runs) {
    const ts = r.times.sort((a, b) => a - b);
    const gf = (ms) => (d.flops / ms / 1e6).toFixed(1);
    console.log(
      `${w.id} t=${r.t} ${r.variant.padEnd(7)} ${r.e.info.simd.padEnd(8)} median ${gf(ts[ts.length >> 1])} best ${gf(ts[0])} GFLOP/s  (${ts[ts.length >> 1].toFixed(2)} ms)  ${r.dir}`,
    );
  }
  for (const r of runs) await r.e.dispose().catch(() => {});
}
console.log(
  `# load at end ${os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')}`,
);
