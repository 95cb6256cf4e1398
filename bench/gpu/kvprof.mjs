#!/usr/bin/env node
// Where a KV cache decode call's host time goes (run under `node --cpu-prof`): a b32 4k decode step on a
// cache of 16-row blocks, called back to back from the public API, then the profile's top self times.
// --read-only: calls without new rows. --parts: the addon's host time per part of a call too (cuda/host_clock.h), from a second run of the loop.
//   node --cpu-prof --cpu-prof-dir=DIR bench/gpu/kvprof.mjs [--batch 32] [--bs 16] [--calls 2000] [--grow] [--parts]
//   node bench/gpu/kvprof.mjs --report DIR
import { readdirSync, readFileSync } from 'node:fs';

const argv = process.argv.slice(2);
const opt = (name, dflt) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : dflt);
if (argv.includes('--report')) {
  const dir = opt('--report');
  const p = JSON.parse(readFileSync(`${dir}/${readdirSync(dir)[0]}`, 'utf8'));
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map();
  const total = p.timeDeltas.reduce((a, b) => a + b, 0);
  p.samples.forEach((id, i) => {
    const f = byId.get(id).callFrame;
    const k = `${f.functionName || '(anonymous)'} ${f.url.split('/').slice(-2).join('/')}:${f.lineNumber}`;
    self.set(k, (self.get(k) ?? 0) + p.timeDeltas[i]);
  });
  for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 30))
    console.log(`${((v / total) * 100).toFixed(1)}% ${k}`);
  process.exit(0);
}
const { cudaAddon, loadCudaBackend } = await import('../../dist/cuda/backend.js');
const { engineFromBackend } = await import('../../dist/engine.js');
const { validateKvCall } = await import('../../dist/kvcache/validate.js');
const { timeAddonAttention } = await import('./addon-time.mjs');
const native = timeAddonAttention(cudaAddon());
const backend = await loadCudaBackend();
const engine = engineFromBackend(backend);
const [B, H, Hk, D, lk, bs] = [Number(opt('--batch', 32)), 32, 8, 128, 4096, Number(opt('--bs', 16))];
const per = Math.ceil(lk / bs);
const cache = await engine.createKvCache({
  numBlocks: B * per,
  blockSize: bs,
  numKvHeads: Hk,
  headDim: D,
  dtype: 'bfloat16',
});
const up = (rows, heads) =>
  engine.upload({ data: new Uint16Array(rows * heads * D).fill(0x3f00), shape: [rows, heads, D], dtype: 'bfloat16' });
const [q, kNew, vNew, out] = await Promise.all([up(B, H), up(B, Hk), up(B, Hk), up(B, H)]);
// --read-only: no new rows (no write kernel), the cache's 4k keys read as they are.
const readOnly = argv.includes('--read-only');
const options = {
  cuSeqlensQ: Int32Array.from({ length: B + 1 }, (_, i) => i),
  cacheSeqlens: new Int32Array(B).fill(readOnly ? lk : lk - 1),
  blockTable: Int32Array.from({ length: B * per }, (_, i) => i),
  ...(readOnly ? {} : { kNew, vNew }),
  causal: true,
  out,
};
const calls = Number(opt('--calls', 2000));
// --grow: a decode loop's lengths (cacheSeqlens rising by one per step, 256 steps round), no two alike.
const grow = argv.includes('--grow');
const lens = Array.from({ length: 256 }, (_, i) => new Int32Array(B).fill(lk - 256 + i + (readOnly ? 1 : 0)));
const loop = async () => {
  native.reset();
  const t0 = performance.now();
  for (let i = 0; i < calls; i++)
    await engine.attentionWithKvCache(q, cache, grow ? { ...options, cacheSeqlens: lens[i % 256] } : options);
  const t1 = performance.now();
  const host = (t1 - t0) / calls;
  await engine.synchronize();
  // The final synchronize: long when the GPU was behind (a GPU-bound loop), about one step when not.
  const tail = performance.now() - t1;
  console.log(
    `bs ${bs}${grow ? ', growing' : ''}${readOnly ? ', read-only' : ''}: ${(host * 1e3).toFixed(0)} us host per call (${((native.ms / calls) * 1e3).toFixed(0)} in the addon), ${(((performance.now() - t0) / calls) * 1e3).toFixed(0)} us with the GPU; the last synchronize ${(tail * 1e3).toFixed(0)} us`,
  );
};
await loop();
{
  // The kernels of one step (read-only, the same keys) between CUDA events, for the loop to be compared with.
  const view = { spec: cache, location: 'cuda', cache };
  const p = validateKvCall(view, q, {
    ...options,
    kNew: undefined,
    vNew: undefined,
    cacheSeqlens: new Int32Array(B).fill(lk),
  });
  await backend.timeKv(p, 3);
  const r = await backend.timeKv(p, 50);
  console.log(
    `kernels of a read-only step: ${(r.kernelMs * 1e3).toFixed(0)} us (median), ${(r.meanMs * 1e3).toFixed(0)} us (mean)`,
  );
}
if (argv.includes('--parts')) {
  const addon = cudaAddon();
  addon.hostProfile(true);
  await loop();
  const { calls: n, us } = addon.hostProfile(false);
  const parts = Object.entries(us).filter(([, t]) => t > 0);
  const sum = parts.reduce((s, [, t]) => s + t, 0);
  console.log(
    `addon parts, us per call (${n} calls, ${(sum / n).toFixed(1)} in all): ${parts.map(([k, t]) => `${k} ${(t / n).toFixed(1)}`).join(', ')}`,
  );
}
await engine.dispose();
