#!/usr/bin/env node
// The features against the plain path (issue 14: softcap, ALiBi, windows, sinks and Dv != D within 10%
// of it on the same shape): kernel time (CUDA events, the addon's timing hook) and the awaited call on
// device tensors, each feature on the default plan (on sm_90 the Hopper kernel, its general copy where
// a feature needs it) and on the mma.sync kernel (cudaWgmma off), interleaved in one run.
//
//   node bench/gpu/features.mjs [--out file.jsonl] [--append] [--iters 20] [--match shape-regex]
//                               [--features feature-regex] [--impl label] [--no-mma]
// --impl labels the rows of another build (FLASHATTN_CUDA_ADDON=path) in an A/B run.
import { randomFillSync } from 'node:crypto';
import { appendFileSync, writeFileSync } from 'node:fs';
import { loadCudaBackend } from '../../dist/cuda/backend.js';
import { engineFromBackend } from '../../dist/engine.js';
import { setKnobs } from '../../dist/knobs.js';
import { validateVarlen } from '../../dist/validate.js';

const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : dflt;
};
const out = opt('--out', null);
const iters = Number(opt('--iters', 20));
const match = opt('--match', null);
const only = opt('--features', null);
const impl = opt('--impl', 'flashattn');
if (out && !argv.includes('--append')) writeFileSync(out, '');

const backend = await loadCudaBackend();
const engine = engineFromBackend(backend);
console.log(`device: ${backend.info.device} (cc ${backend.info.computeCapability}), addon ${backend.info.addon}`);

// Random bf16 bits in ±[0.5, 1) (never zeros).
function randomBf16(n) {
  const a = new Uint16Array(n);
  randomFillSync(a);
  for (let i = 0; i < n; i++) a[i] = (a[i] & 0x807f) | 0x3f00;
  return a;
}
const cu = (lens) => {
  const c = new Int32Array(lens.length + 1);
  lens.forEach((l, i) => {
    c[i + 1] = c[i] + l;
  });
  return c;
};

// Pairs a row keeps: causal and a window [left, right] aligned bottom-right (SEMANTICS.md).
function keptPairs(lens, causal, window) {
  const [left, right] = window ?? [-1, causal ? 0 : -1];
  let kept = 0;
  for (const l of lens)
    for (let i = 0; i < l; i++) {
      const lo = left < 0 ? 0 : Math.max(0, i - left);
      const hi = right < 0 ? l - 1 : Math.min(l - 1, i + right);
      kept += Math.max(0, hi - lo + 1);
    }
  return kept;
}

const bases = [
  { name: 'd128 causal 4x4k h16', lens: [4096, 4096, 4096, 4096], h: 16, hk: 16, d: 128, causal: true },
  { name: 'd128 full 8x2k h16', lens: Array(8).fill(2048), h: 16, hk: 16, d: 128, causal: false },
  { name: 'd64 causal 4x4k h32', lens: [4096, 4096, 4096, 4096], h: 32, hk: 32, d: 64, causal: true },
  { name: 'GQA 32/8 d128 causal 4x4k', lens: [4096, 4096, 4096, 4096], h: 32, hk: 8, d: 128, causal: true },
];
const alibi = (h) => Float32Array.from({ length: h }, (_, i) => 2 ** (-8 * ((i + 1) / h)));
const sinks = (h) => Float32Array.from({ length: h }, (_, i) => Math.sin(i));
// Each feature: call options (and head dims) on top of the base shape.
const features = [
  ['plain', () => ({})],
  ['softcap 30', () => ({ softcap: 30 })],
  ['alibi', (s) => ({ alibiSlopes: alibi(s.h) })],
  ['softcap 30 + alibi', (s) => ({ softcap: 30, alibiSlopes: alibi(s.h) })],
  ['window 1024', (s) => ({ window: [1024, s.causal ? 0 : 1024] })],
  ['sinks', (s) => ({ sinks: sinks(s.h) })],
  ['negative scale', (s) => ({ softmaxScale: -1 / Math.sqrt(s.d) })],
  ['dv = d / 2', (s) => ({ dv: s.d / 2 })],
  ['d = 96 (padded)', (s) => (s.d === 128 ? { d: 96, dv: 96 } : null)],
];
const plans = [['default', {}]];
if (!argv.includes('--no-mma')) plans.push(['mma.sync', { cudaWgmma: false }]);

function record(row) {
  console.log(JSON.stringify(row));
  if (out) appendFileSync(out, `${JSON.stringify(row)}\n`);
}

for (const s of bases) {
  if (match && !new RegExp(match).test(s.name)) continue;
  const total = s.lens.reduce((a, b) => a + b, 0);
  const tensors = new Map();
  const tensor = async (heads, dim) => {
    const key = `${heads}x${dim}`;
    if (!tensors.has(key)) {
      const data = randomBf16(total * heads * dim);
      tensors.set(key, await engine.upload({ data, shape: [total, heads, dim], dtype: 'bfloat16' }));
    }
    return tensors.get(key);
  };
  let plainMs = null;
  for (const [fname, make] of features) {
    const f = make(s);
    if (f === null || (only && fname !== 'plain' && !new RegExp(only).test(fname))) continue;
    const { d = s.d, dv = d, ...rest } = f;
    const [q, k, v] = [await tensor(s.h, d), await tensor(s.hk, d), await tensor(s.hk, dv)];
    const options = { cuSeqlensQ: cu(s.lens), cuSeqlensK: cu(s.lens), causal: s.causal, ...rest };
    const kept = keptPairs(s.lens, s.causal, rest.window);
    const flops = 2 * kept * s.h * (d + dv); // 4 * pairs * heads * d when dv = d
    for (const [pname, knobs] of plans) {
      const restore = setKnobs(knobs);
      try {
        const p = validateVarlen(q, k, v, options);
        await backend.time(p, 3);
        const r = await backend.time(p, iters);
        const awaited = async (n) => {
          const t0 = performance.now();
          for (let i = 0; i < n; i++) {
            const res = await engine.attentionVarlen(q, k, v, options);
            res.out.dispose();
            res.lse?.dispose();
          }
          await engine.synchronize();
          return (performance.now() - t0) / n;
        };
        await awaited(2);
        const awaitedMs = await awaited(10);
        if (fname === 'plain' && pname === 'default') plainMs = r.kernelMs;
        record({
          impl,
          shape: s.name,
          feature: fname,
          plan: pname,
          kernel: `${r.tile}${r.full ? '' : ' general'} splits=${r.splits}`,
          ms: r.kernelMs,
          tflops: flops / (r.kernelMs * 1e9),
          awaitedMs,
          vsPlain: plainMs ? r.kernelMs / plainMs : null,
        });
      } finally {
        restore();
      }
    }
  }
  for (const t of tensors.values()) t.dispose();
}
await engine.dispose();
