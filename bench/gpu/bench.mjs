#!/usr/bin/env node
// Times the CUDA engine on bench/gpu/shapes.mjs: kernel time on device tensors (CUDA events
// around the launches, through the addon's timing hook; median of --iters), and end to end
// from typed arrays (wall clock, copies included) for a few shapes. Writes JSON lines to
// --out (default stdout only) for table.mjs.
//
//   node bench/gpu/bench.mjs [--out file.jsonl] [--append] [--iters 20] [--only substring]
//                            [--match regex] [--dtype bfloat16] [--impl name] [--no-e2e] [--variants] [--f32]
// --variants also times forced split counts / tiles on the decode shapes (tuning runs).
// --impl labels the rows (default flashattn): an A/B run times another build of the addon
// (FLASHATTN_CUDA_ADDON=path) as `--impl "flashattn base"`, and table.mjs adds its column.
import { randomFillSync } from 'node:crypto';
import { appendFileSync, writeFileSync } from 'node:fs';
import { loadCudaBackend } from '../../dist/cuda/backend.js';
import { engineFromBackend } from '../../dist/engine.js';
import { validateVarlen } from '../../dist/validate.js';
import { flops, kvBytes, shapes } from './shapes.mjs';

const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : dflt;
};
const out = opt('--out', null);
const iters = Number(opt('--iters', 20));
const only = opt('--only', null);
const variants = argv.includes('--variants');
const dtypeOnly = opt('--dtype', null);
const impl = opt('--impl', 'flashattn');
const e2e = !argv.includes('--no-e2e');
const match = opt('--match', null);
if (out && !argv.includes('--append')) writeFileSync(out, '');

const backend = await loadCudaBackend();
// One engine (one stream) for the timing hook and the calls: device tensors belong to their engine.
const engine = engineFromBackend(backend);
console.log(
  `device: ${backend.info.device} (cc ${backend.info.computeCapability}, ${backend.info.multiprocessors} SMs), addon ${backend.info.addon}`,
);

/** Random half-precision bits in ±[0.5, 1) (never zeros: zeros can run faster than real data). */
function randomHalf(n, dtype) {
  const a = new Uint16Array(n);
  randomFillSync(a);
  const [keep, exp] = dtype === 'bfloat16' ? [0x807f, 0x3f00] : [0x83ff, 0x3800];
  for (let i = 0; i < n; i++) a[i] = (a[i] & keep) | exp;
  return a;
}

const cu = (lens) => Int32Array.from([0, ...lens.map((_, i) => lens.slice(0, i + 1).reduce((x, y) => x + y, 0))]);

async function inputs(s) {
  const tq = s.seqlensQ.reduce((a, b) => a + b, 0),
    tk = s.seqlensK.reduce((a, b) => a + b, 0);
  const t = (n, shape) => ({ data: randomHalf(n, s.dtype), shape, dtype: s.dtype });
  return {
    host: {
      q: t(tq * s.numHeads * s.headDim, [tq, s.numHeads, s.headDim]),
      k: t(tk * s.numKvHeads * s.headDim, [tk, s.numKvHeads, s.headDim]),
      v: t(tk * s.numKvHeads * s.headDim, [tk, s.numKvHeads, s.headDim]),
    },
    options: { cuSeqlensQ: cu(s.seqlensQ), cuSeqlensK: cu(s.seqlensK), causal: s.causal },
  };
}

/** n calls awaited back to back, one synchronize at the end: ms per call (outputs disposed as they come). */
/** 20 calls in flight (issued without awaiting), then one synchronize: per call. */
async function inflightRound(q, k, v, options) {
  const t0 = performance.now();
  const rs = await Promise.all(Array.from({ length: 20 }, () => engine.attentionVarlen(q, k, v, options)));
  await engine.synchronize();
  const ms = (performance.now() - t0) / 20;
  for (const r of rs) {
    r.out.dispose();
    r.lse?.dispose();
  }
  return ms;
}

async function awaitedLoop(q, k, v, options, n) {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const r = await engine.attentionVarlen(q, k, v, options);
    r.out.dispose();
    r.lse?.dispose();
  }
  await engine.synchronize();
  return (performance.now() - t0) / n;
}

/**
 * The call as a user sees it (wall clock around the public API), three ways: back to back, each
 * awaited (a call resolves once enqueued; one synchronize at the end), per call; awaited and then
 * synchronized (its kernels done) each time, median; and 20 calls in flight (issued without
 * awaiting, then one synchronize), per call. Outputs are disposed as they come.
 */
async function callTimes(q, k, v, options, n = 30) {
  const sync = () => (engine.synchronize ? engine.synchronize() : undefined);
  const drop = (r) => {
    r.out.dispose();
    r.lse?.dispose();
  };
  await awaitedLoop(q, k, v, options, 3); // warm-up
  const backToBack = await awaitedLoop(q, k, v, options, n);
  const times = [];
  let t0;
  for (let i = 0; i < n; i++) {
    t0 = performance.now();
    const r = await engine.attentionVarlen(q, k, v, options);
    await sync();
    times.push(performance.now() - t0);
    drop(r);
  }
  times.sort((a, b) => a - b);
  // 20 in flight: a first round grows the pool to 20 live outputs (untimed), then the median of 3 rounds.
  const rounds = [];
  for (let round = 0; round < 4; round++) {
    t0 = performance.now();
    const rs = await Promise.all(Array.from({ length: 20 }, () => engine.attentionVarlen(q, k, v, options)));
    await sync();
    if (round > 0) rounds.push((performance.now() - t0) / 20);
    for (const r of rs) drop(r);
  }
  rounds.sort((a, b) => a - b);
  // The same 20 in flight into one caller-owned `out` (as a decode loop passes it): no allocation per call.
  const first = await engine.attentionVarlen(q, k, v, options);
  const into = { ...options, out: first.out, lse: first.lse ?? undefined };
  const roundsOut = [];
  for (let round = 0; round < 4; round++) {
    t0 = performance.now();
    await Promise.all(Array.from({ length: 20 }, () => engine.attentionVarlen(q, k, v, into)));
    await sync();
    if (round > 0) roundsOut.push((performance.now() - t0) / 20);
  }
  drop(first);
  roundsOut.sort((a, b) => a - b);
  return { backToBack, synced: times[n >> 1], inflight: rounds[1], inflightIntoOut: roundsOut[1] };
}

function record(row) {
  console.log(JSON.stringify(row));
  if (out) appendFileSync(out, JSON.stringify(row) + '\n');
}

// The link, measured in this run: a call from typed arrays is judged against bytes / bandwidth.
const link = await backend.copyBandwidth(256 << 20);
console.log(
  `pinned copies: ${link.toDeviceGBps.toFixed(1)} GB/s to the GPU, ${link.fromDeviceGBps.toFixed(1)} GB/s back; ` +
    `host memcpy into pinned ${link.hostCopyGBps.toFixed(1)} GB/s on ${link.copyThreads} threads; ` +
    `page-locked in place and copied ${link.registeredGBps.toFixed(1)} GB/s`,
);
record({ impl: 'link', ...link });

const f32Names = [
  'dense d128 full 16384',
  'dense d128 causal 16384',
  'dense d128 causal 4096',
  'dense d128 full 2048',
  'dense d64 full 2048',
  'decode 32/8 heads 4k keys b32',
];
const e2eNames = new Set(['dense d128 causal 4096', 'varlen [512..7000] d128 causal', 'decode 32/8 heads 4k keys b32']);
for (const s of argv.includes('--f32') ? [] : shapes) {
  if (only && !s.name.includes(only)) continue;
  if (dtypeOnly && s.dtype !== dtypeOnly) continue;
  if (match && !new RegExp(match).test(s.name)) continue;
  if (s.peerOnly) continue;
  const { host, options } = await inputs(s);
  const [q, k, v] = await Promise.all([engine.upload(host.q), engine.upload(host.k), engine.upload(host.v)]);
  const p = validateVarlen(q, k, v, options);
  const plans = [{}];
  if (variants && s.kind === 'decode')
    plans.push({ splits: 1 }, { splits: 2 }, { splits: 4 }, { splits: 8 }, { splits: 16 });
  for (const plan of plans) {
    await backend.time(p, 3, plan); // warm-up: module load, smem opt-in, pool growth
    const r = await backend.time(p, iters, plan);
    // As many launches back to back as callTimes makes, for its comparison (the mean: clocks drift under a long run).
    const run30 = Object.keys(plan).length ? null : await backend.time(p, 30, plan);
    const row = {
      impl,
      shape: s.name,
      dtype: s.dtype,
      kind: s.kind,
      ms: r.kernelMs,
      minMs: r.minMs,
      tflops: flops(s) / (r.kernelMs * 1e9),
      gbps: kvBytes(s) / (r.kernelMs * 1e6),
      plan: `${r.tile} d${r.headDimClass} splits=${r.splits} work=${r.numWork} occ=${r.blocksPerSm}`,
      forced: Object.keys(plan).length ? JSON.stringify(plan) : undefined,
      addon: backend.info.addon,
    };
    if (Object.keys(plan).length === 0) {
      const c = await callTimes(q, k, v, options);
      row.awaitedMs = c.backToBack;
      row.callMs = c.synced;
      row.inflightMs = c.inflight;
      row.inflightIntoOutMs = c.inflightIntoOut;
      row.kernelMeanMs = run30.meanMs;
      // Interleaved, so both sides see the same clocks: 3 rounds of (30 timed launches, 30 awaited calls,
      // 20 calls in flight, 20 timed launches); the median round's call minus kernel is what "within 20 us
      // of the kernel" is judged on, and 20 in flight against the mean of the launches on either side of it
      // (a long run's clocks drift by more than 3% between a kernel batch and a call batch minutes apart).
      const rounds = [];
      for (let i = 0; i < 3; i++) {
        const kernel = (await backend.time(p, 30)).meanMs;
        const awaited = await awaitedLoop(q, k, v, options, 30);
        const inflight = await inflightRound(q, k, v, options);
        const after = (await backend.time(p, 20)).meanMs;
        rounds.push({ kernel, awaited, inflight, around: (kernel + after) / 2 });
      }
      const mid = (xs) => [...xs].sort((x, y) => x - y)[xs.length >> 1];
      row.interleaved = {
        kernelMs: mid(rounds.map((r) => r.kernel)),
        awaitedMs: mid(rounds.map((r) => r.awaited)),
        overUs: mid(rounds.map((r) => (r.awaited - r.kernel) * 1e3)),
        inflightMs: mid(rounds.map((r) => r.inflight)),
        inflightOverPct: mid(rounds.map((r) => (r.inflight / r.around - 1) * 100)),
      };
    }
    record(row);
  }
  if (e2e && e2eNames.has(s.name)) {
    // From typed arrays, two ways: plain (pageable) arrays with a new result array per call, and
    // engine.hostTensor's page-locked arrays with the result written into one (options.out).
    const pin = (t) => {
      const h = engine.hostTensor(t.shape, t.dtype);
      h.data.set(t.data);
      return h;
    };
    const pinned = { q: pin(host.q), k: pin(host.k), v: pin(host.v) };
    const ref = await engine.attentionVarlen(host.q, host.k, host.v, options);
    const pinnedOut = engine.hostTensor(ref.out.shape, ref.out.dtype);
    const plainOut = { data: new Uint16Array(ref.out.data.length), shape: ref.out.shape, dtype: ref.out.dtype };
    const ways = [
      ['flashattn e2e (typed arrays)', host, options],
      ['flashattn e2e (typed arrays, into a reused out)', host, { ...options, out: plainOut }],
      ['flashattn e2e (pinned hostTensor, into out)', pinned, { ...options, out: pinnedOut }],
    ];
    const kernel = (await backend.time(p, iters)).kernelMs;
    for (const [impl, a, o] of ways) {
      const times = [];
      let bytesOut = 0;
      for (let i = 0; i < 7; i++) {
        const t0 = performance.now();
        const r = await engine.attentionVarlen(a.q, a.k, a.v, o);
        times.push(performance.now() - t0);
        bytesOut = r.out.data.byteLength;
      }
      times.sort((x, y) => x - y);
      const bytesIn = a.q.data.byteLength + a.k.data.byteLength + a.v.data.byteLength;
      const floorMs = bytesIn / (link.toDeviceGBps * 1e6) + bytesOut / (link.fromDeviceGBps * 1e6) + kernel;
      const same = Buffer.compare(Buffer.from(pinnedOut.data.buffer), Buffer.from(ref.out.data.buffer)) === 0;
      record({
        impl,
        shape: s.name,
        dtype: s.dtype,
        kind: s.kind,
        ms: times[3],
        bytesIn,
        bytesOut,
        floorMs,
        vsFloor: times[3] / floorMs,
        sameAsPlain: impl.includes('pinned') ? same : undefined,
      });
    }
  }
  for (const x of [q, k, v]) x.dispose();
}
// float32 inputs: to float32 accuracy (the default: float16 pairs on the tensor cores, cuda/split.cuh)
// and with precision 'float16' (converted to float16), kernel time on a few bf16 shapes' dimensions (--f32: these only).
for (const name of f32Names) {
  const s = shapes.find((x) => x.name === name && x.dtype === 'bfloat16');
  if (!s || (only && !name.includes(only)) || (match && !new RegExp(match).test(name))) continue;
  const { host, options } = await inputs(s);
  const f32 = (t) => {
    const data = new Float32Array(t.data.length);
    for (let i = 0; i < data.length; i++) data[i] = (((t.data[i] * 2654435761) >>> 0) / 2 ** 32) * 2 - 1;
    return { data, shape: t.shape, dtype: 'float32' };
  };
  const [q, k, v] = await Promise.all([
    engine.upload(f32(host.q)),
    engine.upload(f32(host.k)),
    engine.upload(f32(host.v)),
  ]);
  for (const precision of ['float32', 'float16']) {
    const p = validateVarlen(q, k, v, { ...options, precision });
    await backend.time(p, 2);
    const r = await backend.time(p, iters);
    // The call as a user sees it: awaited back to back on device tensors, against 10 timed launches
    // right after (so both see the same clocks).
    const opts = { ...options, precision };
    await awaitedLoop(q, k, v, opts, 2);
    const awaitedMs = await awaitedLoop(q, k, v, opts, 10);
    const kernelNowMs = (await backend.time(p, 10)).meanMs;
    record({
      impl: 'flashattn f32',
      awaitedMs,
      overUs: (awaitedMs - kernelNowMs) * 1e3,
      precision,
      shape: s.name,
      dtype: 'float32',
      kind: s.kind,
      ms: r.kernelMs,
      tflops: flops(s) / (r.kernelMs * 1e9),
      gbps: (kvBytes(s) * 2) / (r.kernelMs * 1e6),
      plan: `${r.split ? `pairs ${r.tile}` : r.tile} splits=${r.splits} work=${r.numWork}`,
    });
  }
  for (const x of [q, k, v]) x.dispose();
}
await engine.dispose();
