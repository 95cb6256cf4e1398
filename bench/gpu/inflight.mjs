#!/usr/bin/env node
// Where the time of calls in flight goes beyond their kernels (issue "GPU calls at kernel speed": 20
// calls in flight within 3% of the kernel time). For a few short shapes: N calls issued without
// awaiting, then one synchronize, for N = 1, 5, 20, 100, interleaved with timed launches; the excess
// over N kernels is fitted as fixed + N x per-call, the fixed part being the first call's enqueue and
// the last synchronize's wake-up. Also an idle synchronize's round trip and the first call's enqueue.
//   node bench/gpu/inflight.mjs [--match regex] [--rounds 5]
import { randomFillSync } from 'node:crypto';
import { cudaAddon, loadCudaBackend } from '../../dist/cuda/backend.js';
import { engineFromBackend } from '../../dist/engine.js';
import { validateVarlen } from '../../dist/validate.js';
import { shapes } from './shapes.mjs';

const argv = process.argv.slice(2);
const opt = (name, dflt) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : dflt);
const match = new RegExp(opt('--match', '^(dense d(64|128) (full|causal) (512|1024)|decode 32/8 heads 4k keys b32)$'));
const rounds = Number(opt('--rounds', 5));
const backend = await loadCudaBackend();
const engine = engineFromBackend(backend);
const mid = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const cu = (lens) => {
  const c = new Int32Array(lens.length + 1);
  for (let i = 0; i < lens.length; i++) c[i + 1] = c[i] + lens[i];
  return c;
};

function half(n, dtype) {
  const a = new Uint16Array(n);
  randomFillSync(a);
  const [keep, exp] = dtype === 'bfloat16' ? [0x807f, 0x3f00] : [0x83ff, 0x3800];
  for (let i = 0; i < n; i++) a[i] = (a[i] & keep) | exp;
  return a;
}

const idle = [];
for (let i = 0; i < 200; i++) {
  const t0 = performance.now();
  await engine.synchronize();
  idle.push((performance.now() - t0) * 1e3);
}
console.log(`idle synchronize round trip: median ${mid(idle).toFixed(1)} us, min ${Math.min(...idle).toFixed(1)}`);

for (const s of shapes) {
  if (s.dtype !== 'bfloat16' || s.peerOnly || !match.test(s.name)) continue;
  const tq = s.seqlensQ.reduce((a, b) => a + b, 0),
    tk = s.seqlensK.reduce((a, b) => a + b, 0);
  const up = (rows, heads) =>
    engine.upload({ data: half(rows * heads * s.headDim, s.dtype), shape: [rows, heads, s.headDim], dtype: s.dtype });
  const [q, k, v] = await Promise.all([up(tq, s.numHeads), up(tk, s.numKvHeads), up(tk, s.numKvHeads)]);
  const options = { cuSeqlensQ: cu(s.seqlensQ), cuSeqlensK: cu(s.seqlensK), causal: s.causal };
  const p = validateVarlen(q, k, v, options);
  const first = await engine.attentionVarlen(q, k, v, options);
  const into = { ...options, out: first.out };
  await backend.time(p, 5);
  /** N in flight (new outputs, or into one `out`): total ms, and the first call's enqueue and the final wait. */
  async function flight(n, o) {
    const t0 = performance.now();
    const ps = [engine.attentionVarlen(q, k, v, o)];
    const t1 = performance.now();
    for (let i = 1; i < n; i++) ps.push(engine.attentionVarlen(q, k, v, o));
    const rs = await Promise.all(ps);
    const t2 = performance.now();
    await engine.synchronize();
    const t3 = performance.now();
    if (o === options) for (const r of rs) r.out.dispose();
    return { ms: t3 - t0, firstUs: (t1 - t0) * 1e3, issueUs: ((t2 - t0) * 1e3) / n, waitUs: (t3 - t2) * 1e3 };
  }
  for (const n of [20, 100]) await flight(n, options); // grow the pool
  const ns = [1, 5, 20, 100];
  const acc = Object.fromEntries(
    ns.flatMap((n) => [
      [`new${n}`, []],
      [`out${n}`, []],
    ]),
  );
  const kernels = [];
  for (let r = 0; r < rounds; r++) {
    const before = (await backend.time(p, 30)).meanMs;
    const got = {};
    // Odd rounds run the `out` calls first, so the two kinds see the clocks' state alike.
    for (const n of ns)
      for (const kind of r % 2 ? ['out', 'new'] : ['new', 'out'])
        got[`${kind}${n}`] = await flight(n, kind === 'new' ? options : into);
    const after = (await backend.time(p, 30)).meanMs;
    const kernel = (before + after) / 2;
    kernels.push(kernel);
    for (const [key, g] of Object.entries(got))
      acc[key].push({ ...g, excessUs: (g.ms - Number(key.slice(3)) * kernel) * 1e3 });
  }
  const kernel = mid(kernels);
  console.log(`\n${s.name} (bf16): kernel ${(kernel * 1e3).toFixed(1)} us (median of ${rounds} rounds' means)`);
  const fit = {};
  for (const kind of ['new', 'out']) {
    for (const n of ns) {
      const xs = acc[`${kind}${n}`];
      const ex = mid(xs.map((x) => x.excessUs));
      fit[`${kind}${n}`] = ex;
      console.log(
        `  ${kind === 'new' ? 'new outputs' : 'into one out'} N=${String(n).padStart(3)}: per call ${((mid(xs.map((x) => x.ms)) / n) * 1e3).toFixed(1)} us, ` +
          `excess ${ex.toFixed(1)} us total (${((ex / (n * kernel * 1e3)) * 100).toFixed(2)}%), first enqueue ${mid(xs.map((x) => x.firstUs)).toFixed(1)} us, ` +
          `issue ${mid(xs.map((x) => x.issueUs)).toFixed(1)} us/call, final wait ${mid(xs.map((x) => x.waitUs)).toFixed(1)} us`,
      );
    }
    const per = (fit[`${kind}100`] - fit[`${kind}20`]) / 80;
    console.log(
      `  ${kind}: fitted fixed ${(fit[`${kind}20`] - 20 * per).toFixed(1)} us + ${per.toFixed(2)} us per call`,
    );
  }
  // One call's host time after the stream went idle (2 ms asleep after a synchronize) against back to back:
  // the call's synchronous part, and the addon's parts of it (cuda/host_clock.h), 60 calls each.
  const addon = cudaAddon();
  for (const cold of [true, false]) {
    const sync = [];
    addon.hostProfile(true);
    for (let i = 0; i < 60; i++) {
      if (cold) {
        await engine.synchronize();
        await new Promise((r) => setTimeout(r, 2));
      }
      const t0 = performance.now();
      const call = engine.attentionVarlen(q, k, v, into);
      sync.push((performance.now() - t0) * 1e3);
      await call;
    }
    const { calls, us } = addon.hostProfile(false);
    const parts = Object.entries(us).filter(([, t]) => t > 0);
    const sum = parts.reduce((a, [, t]) => a + t, 0);
    console.log(
      `  ${cold ? 'after idle' : 'back to back'}: call's synchronous part median ${mid(sync).toFixed(1)} us; addon ${(sum / calls).toFixed(1)} us ` +
        `(${parts.map(([key, t]) => `${key} ${(t / calls).toFixed(1)}`).join(', ')})`,
    );
  }
  await engine.synchronize();
  first.out.dispose();
  for (const t of [q, k, v]) t.dispose();
}
await engine.dispose?.();
