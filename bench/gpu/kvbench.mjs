#!/usr/bin/env node
// The cuda engine's KV cache (issue 13's GPU targets): decode steps over a paged cache, batch 32 and 128,
// 32/8 heads, d128, 4k and 32k keys (4,095 / 32,767 cached + 1 appended), block sizes 16 and 256 and one
// block per sequence (a contiguous cache), and a chunked prefill (8 sequences x 512 new rows over 4,096
// cached, causal). Per shape: the kernel time (CUDA events around the attention of a read-only call,
// backend.timeKv, mean of 30) and the call as a user makes it (attentionWithKvCache on device tensors with
// its 1-row write, into one `out`, awaited back to back, and 20 in flight), plus the flat kernel
// (attentionVarlen on the same keys laid end to end) for the contiguous cache. Writes JSON lines for
// table.mjs (impl 'flashattn kv').
//
//   node bench/gpu/kvbench.mjs [--out file.jsonl] [--append] [--dtype bfloat16] [--only substring] [--label name]
// --label tags the rows' impl (an A/B of builds or knobs: 'flashattn kv <label>').
import { randomFillSync } from 'node:crypto';
import { appendFileSync, writeFileSync } from 'node:fs';
import { loadCudaBackend } from '../../dist/cuda/backend.js';
import { CudaTensor } from '../../dist/cuda/tensor.js';
import { engineFromBackend } from '../../dist/engine.js';
import { validateKvCall } from '../../dist/kvcache/validate.js';
import { validateVarlen } from '../../dist/validate.js';
import { timeAddonAttention } from './addon-time.mjs';

const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : dflt;
};
const out = opt('--out', null);
const dtype = opt('--dtype', 'bfloat16');
const only = opt('--only', null);
const label = opt('--label', null);
const tag = (impl) => (label ? `${impl} ${label}` : impl);
if (out && !argv.includes('--append')) writeFileSync(out, '');
const record = (row) => {
  console.log(JSON.stringify(row));
  if (out) appendFileSync(out, `${JSON.stringify(row)}\n`);
};

const backend = await loadCudaBackend();
const engine = engineFromBackend(backend);
const [H, Hk, D] = [32, 8, 128];

function randomHalf(n) {
  const a = new Uint16Array(n);
  randomFillSync(a);
  const [keep, exp] = dtype === 'bfloat16' ? [0x807f, 0x3f00] : [0x83ff, 0x3800];
  for (let i = 0; i < n; i++) a[i] = (a[i] & keep) | exp;
  return a;
}
const host = (rows, heads) => ({ data: randomHalf(rows * heads * D), shape: [rows, heads, D], dtype });
const prefix = (lens) => Int32Array.from([0, ...lens.map((_, i) => lens.slice(0, i + 1).reduce((a, b) => a + b, 0))]);

// One random chunk of key rows on the device, written into every sequence's blocks (contents never zeros).
const CHUNK = 4096;
const chunkK = await engine.upload(host(CHUNK, Hk));
const chunkV = await engine.upload(host(CHUNK, Hk));

/** A cache holding `batch` sequences of `lk` rows each in blocks of `bs` (sequence b in blocks b*per ..). */
async function filledCache(batch, lk, bs) {
  const per = Math.ceil(lk / bs);
  const cache = await engine.createKvCache({
    numBlocks: batch * per,
    blockSize: bs,
    numKvHeads: Hk,
    headDim: D,
    dtype,
  });
  const blockTable = Int32Array.from({ length: batch * per }, (_, i) => i);
  for (let b = 0; b < batch; b++)
    for (let at = 0; at < lk; at += CHUNK) {
      const n = Math.min(CHUNK, lk - at);
      const view = (t) =>
        n === CHUNK ? t : new CudaTensor([n, Hk, D], dtype, CudaTensor.bufferOf(t, 'k', backend), backend, true);
      await engine.writeKvCache(cache, view(chunkK), view(chunkV), {
        cacheSeqlens: Int32Array.of(at),
        blockTable: blockTable.subarray(b * per, (b + 1) * per),
        cuSeqlensNew: Int32Array.of(0, n),
      });
    }
  await engine.synchronize();
  return { cache, blockTable, per };
}

const native = timeAddonAttention(backend.addon);

/**
 * Awaited back to back (mean of 30, one synchronize at the end) and 20 in flight, ms per call; the addon's
 * host ms; and interleaved with `kernel()` (the kernels' mean ms), so that both see the same clocks: 3
 * rounds of (kernel, 60 awaited calls), the median round's difference.
 */
async function callTimes(call, kernel) {
  // 300 calls first: V8 optimises the per-call validation (a loop over the block table) only after many
  // calls, and a decode loop makes thousands; 30 cold calls measured 0.3 ms of host time at 16-row blocks.
  for (let i = 0; i < 300; i++) await call();
  await engine.synchronize();
  native.reset();
  let t0 = performance.now();
  for (let i = 0; i < 30; i++) await call();
  const hostMs = (performance.now() - t0) / 30;
  const addonMs = native.ms / native.calls;
  await engine.synchronize();
  const awaited = (performance.now() - t0) / 30;
  t0 = performance.now();
  await Promise.all(Array.from({ length: 20 }, call));
  await engine.synchronize();
  const inflightMs = (performance.now() - t0) / 20;
  const rounds = [];
  for (let r = 0; r < 3; r++) {
    const k = await kernel();
    t0 = performance.now();
    for (let i = 0; i < 60; i++) await call();
    await engine.synchronize();
    rounds.push({ k, a: (performance.now() - t0) / 60 });
  }
  const mid = (xs) => [...xs].sort((x, y) => x - y)[xs.length >> 1];
  const interleaved = {
    kernelMs: mid(rounds.map((x) => x.k)),
    awaitedMs: mid(rounds.map((x) => x.a)),
    overUs: mid(rounds.map((x) => (x.a - x.k) * 1e3)),
  };
  return { awaitedMs: awaited, inflightMs, hostMs, addonMs, interleaved };
}

const kept = (lqs, lks) =>
  lqs.reduce((s, lq, b) => {
    let k = 0;
    for (let i = 0; i < lq; i++) k += Math.min(lks[b], i + lks[b] - lq + 1);
    return s + k;
  }, 0);

/**
 * A filled cache of `batch` sequences of `lk` rows in blocks of `bs`, device q / kNew / vNew of `lq` rows per
 * sequence and one `out`, and the kernel time (backend.timeKv, mean of 30) of a read-only call over
 * `readLen` keys per sequence. `done()` frees it all.
 */
async function setUp({ batch, lq, lk, bs, readLen }) {
  const { cache, blockTable } = await filledCache(batch, lk, bs);
  const cuSeqlensQ = prefix(Array(batch).fill(lq));
  const rows = batch * lq;
  const q = await engine.upload(host(rows, H));
  const kNew = await engine.upload(host(rows, Hk));
  const vNew = await engine.upload(host(rows, Hk));
  const outT = await engine.upload({ data: new Uint16Array(rows * H * D), shape: [rows, H, D], dtype });
  const view = { spec: cache, location: 'cuda', cache };
  const readOnly = validateKvCall(view, q, {
    cuSeqlensQ,
    cacheSeqlens: new Int32Array(batch).fill(readLen),
    blockTable,
    causal: true,
  });
  await backend.timeKv(readOnly, 3);
  const r = await backend.timeKv(readOnly, 30);
  const kernel = async () => (await backend.timeKv(readOnly, 20)).meanMs;
  const done = () => {
    for (const t of [q, kNew, vNew, outT]) t.dispose();
    cache.dispose();
  };
  return { cache, blockTable, cuSeqlensQ, q, kNew, vNew, outT, r, kernel, done };
}

async function run({ name, batch, lq, lk, bs }) {
  if (only && !name.includes(only)) return;
  // Kernel: the attention over lk keys (a read-only call: cacheSeqlens = lk).
  const { cache, blockTable, cuSeqlensQ, q, kNew, vNew, outT, r, kernel, done } = await setUp({
    batch,
    lq,
    lk,
    bs,
    readLen: lk,
  });
  // The call: lk - lq cached + lq appended (written over the same rows every time), into one out.
  const options = {
    cuSeqlensQ,
    cacheSeqlens: new Int32Array(batch).fill(lk - lq),
    blockTable,
    kNew,
    vNew,
    causal: true,
    out: outT,
  };
  const c = await callTimes(() => engine.attentionWithKvCache(q, cache, options), kernel);
  const bytes = 2 * batch * lk * Hk * D * 2;
  const flops = 4 * kept(Array(batch).fill(lq), Array(batch).fill(lk)) * H * D;
  const row = {
    impl: tag('flashattn kv'),
    shape: name,
    dtype,
    ms: r.meanMs,
    gbps: bytes / (r.meanMs * 1e6),
    tflops: flops / (r.meanMs * 1e9),
    ...c,
    plan: `${r.tile} splits=${r.splits} work=${r.numWork}`,
  };
  if (bs >= lk) {
    // The same keys as one flat tensor (the cache's rows, viewed): attentionVarlen's kernel on them.
    const flat = (t) =>
      new CudaTensor([batch * bs, Hk, D], dtype, CudaTensor.bufferOf(t, 'cache', backend), backend, true);
    const p = validateVarlen(q, flat(cache.k), flat(cache.v), {
      cuSeqlensQ,
      cuSeqlensK: prefix(Array(batch).fill(lk)),
      causal: true,
    });
    const f = await backend.time(p, 30);
    row.flatMs = f.meanMs;
  }
  record(row);
  done();
}

/**
 * A decode loop as a server runs it: each step appends one row per sequence and attends over the grown
 * history (cacheSeqlens rises by one per step, so no two steps share a work list), into one out. Steps
 * awaited back to back, and 20 steps in flight, against the kernel at the loop's middle length.
 */
async function decodeLoop({ name, batch, lk, bs, steps }) {
  if (only && !name.includes(only)) return;
  const mid = lk - steps / 2;
  const { cache, blockTable, cuSeqlensQ, q, kNew, vNew, outT, r, done } = await setUp({
    batch,
    lq: 1,
    lk,
    bs,
    readLen: mid,
  });
  const step = (i) =>
    engine.attentionWithKvCache(q, cache, {
      cuSeqlensQ,
      cacheSeqlens: new Int32Array(batch).fill(lk - steps + (i % steps)),
      blockTable,
      kNew,
      vNew,
      causal: true,
      out: outT,
    });
  for (let i = 0; i < 2 * steps; i++) await step(i); // warm-up (V8, the pool)
  await engine.synchronize();
  let t0 = performance.now();
  for (let i = 0; i < steps; i++) await step(i);
  await engine.synchronize();
  const awaitedMs = (performance.now() - t0) / steps;
  const rounds = [];
  for (let round = 0; round < 3; round++) {
    t0 = performance.now();
    await Promise.all(Array.from({ length: 20 }, (_, i) => step(round * 20 + i)));
    await engine.synchronize();
    rounds.push((performance.now() - t0) / 20);
  }
  rounds.sort((a, b) => a - b);
  record({
    impl: tag('flashattn kv loop'),
    shape: name,
    dtype,
    ms: r.meanMs,
    gbps: (2 * batch * mid * Hk * D * 2) / (r.meanMs * 1e6),
    awaitedMs,
    inflightMs: rounds[1],
    plan: `${r.tile} splits=${r.splits} work=${r.numWork}`,
  });
  done();
}

console.log(`device: ${backend.info.device}; ${dtype}`);
for (const bs of [16, 256])
  await decodeLoop({
    name: `kv decode b32 4k bs${bs}, a loop of 256 growing steps`,
    batch: 32,
    lk: 4096,
    bs,
    steps: 256,
  });
for (const batch of [32, 128])
  for (const lk of [4096, 32768])
    for (const bs of [16, 256, lk])
      await run({
        name: `kv decode b${batch} ${lk / 1024}k ${bs === lk ? 'contiguous' : `bs${bs}`}`,
        batch,
        lq: 1,
        lk,
        bs,
      });
for (const bs of [16, 256, 4608])
  await run({
    name: `kv chunked prefill 8x512 over 4k ${bs === 4608 ? 'contiguous' : `bs${bs}`}`,
    batch: 8,
    lq: 512,
    lk: 4608,
    bs,
  });
chunkK.dispose();
chunkV.dispose();
await engine.dispose();
