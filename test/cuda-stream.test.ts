// The cuda engine's calls as a server makes them (issue "GPU calls at kernel speed"): stream order
// (calls on device tensors resolve once enqueued and run in the order they were made), results
// written into caller-owned `out` tensors, a kernel fault surfacing at the next wait without
// aborting the process, dispose with calls in flight, two engines each on its own stream, and
// device memory that stays flat over thousands of calls. Skips without a GPU, with the reason.
import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { firstDiff } from './conformance/kvcache.js';
import { randn, rng } from './conformance/random.js';
import { cudaAddon } from '../src/cuda/backend.js';
import { encode } from '../src/half.js';
import { createEngine } from '../src/node.js';
import { cudaEngineOrReason } from './cuda-helpers.js';
import type { DeviceTensor, Tensor, VarlenOptions } from '../src/types.js';

const { engine, reason } = await cudaEngineOrReason('cuda stream tests');
afterAll(async () => {
  await engine?.dispose();
});
const e = () => engine!;
const seed = 77;
const next = rng(seed);
const [L, H, D] = [300, 4, 64];
const t = (rows: number): Tensor => ({
  data: encode(randn(next, rows * H * D), 'float16'),
  shape: [rows, H, D],
  dtype: 'float16',
});
const opts: VarlenOptions = {
  cuSeqlensQ: Int32Array.of(0, 100, L),
  cuSeqlensK: Int32Array.of(0, 100, L),
  causal: true,
};

describe.skipIf(!engine)(`cuda calls in stream order${engine ? '' : ` (skipped: ${reason})`}`, () => {
  it('a chain of un-awaited calls, each reading the previous output, equals the awaited chain bit for bit', async () => {
    const [q, k, v] = await Promise.all([e().upload(t(L)), e().upload(t(L)), e().upload(t(L))]);
    const zeros = { data: new Uint16Array(L * H * D), shape: [L, H, D], dtype: 'float16' as const };
    const outs: DeviceTensor[] = [];
    for (let i = 0; i < 8; i++) outs.push(await e().upload(zeros));
    // Awaited, downloaded step by step.
    let prev: DeviceTensor = q;
    const awaited: Tensor[] = [];
    for (let i = 0; i < 8; i++) {
      const { out } = await e().attentionVarlen(prev, k, v, opts);
      awaited.push(await e().download(out));
      prev = out;
    }
    // Not awaited: each call reads the out tensor the previous call writes.
    const calls: Promise<unknown>[] = [];
    prev = q;
    for (let i = 0; i < 8; i++) {
      calls.push(e().attentionVarlen(prev, k, v, { ...opts, out: outs[i] }));
      prev = outs[i]!;
    }
    await Promise.all(calls);
    for (let i = 0; i < 8; i++) expect((await e().download(outs[i]!)).data).toEqual(awaited[i]!.data);
    await e().synchronize();
    for (const x of [q, k, v, ...outs]) x.dispose();
  });

  it('out and lse options are written in place and returned; wrong ones are refused before any work', async () => {
    const [q, k, v] = await Promise.all([e().upload(t(L)), e().upload(t(L)), e().upload(t(L))]);
    const fresh = await e().attentionVarlen(q, k, v, { ...opts, returnLse: true });
    const out = await e().upload({ data: new Uint16Array(L * H * D), shape: [L, H, D], dtype: 'float16' });
    const lse = await e().upload({ data: new Float32Array(H * L), shape: [H, L], dtype: 'float32' });
    const r = await e().attentionVarlen(q, k, v, { ...opts, out, lse });
    expect(r.out).toBe(out);
    expect(r.lse).toBe(lse);
    expect((await e().download(out)).data).toEqual((await e().download(fresh.out)).data);
    expect((await e().download(lse)).data).toEqual((await e().download(fresh.lse!)).data);
    await expect(e().attentionVarlen(q, k, v, { ...opts, out: lse })).rejects.toThrow(/options.out.dtype/);
    await expect(e().attentionVarlen(t(L), t(L), t(L), { ...opts, out })).rejects.toThrow(TypeError);
    const other = await createEngine({ backend: 'cuda' });
    try {
      await expect(other.attentionVarlen(q, k, v, opts)).rejects.toThrow(/another cuda engine/);
    } finally {
      await other.dispose();
    }
    for (const x of [q, k, v, out, lse, fresh.out, fresh.lse!]) x.dispose();
  });

  it('a decode loop into one out tensor keeps device memory flat over 10,000 calls', async () => {
    const Hq = 32,
      Hk = 8,
      Dh = 128,
      keys = 1024,
      B = 4;
    const rand = (n: number) => Uint16Array.from({ length: n }, (_, i) => 0x3800 | ((i * 2654435761) >>> 22));
    const q = await e().upload({ data: rand(B * Hq * Dh), shape: [B, Hq, Dh], dtype: 'float16' });
    const k = await e().upload({ data: rand(B * keys * Hk * Dh), shape: [B * keys, Hk, Dh], dtype: 'float16' });
    const v = await e().upload({ data: rand(B * keys * Hk * Dh), shape: [B * keys, Hk, Dh], dtype: 'float16' });
    const out = await e().upload({ data: new Uint16Array(B * Hq * Dh), shape: [B, Hq, Dh], dtype: 'float16' });
    const o: VarlenOptions = {
      cuSeqlensQ: Int32Array.from({ length: B + 1 }, (_, i) => i),
      cuSeqlensK: Int32Array.from({ length: B + 1 }, (_, i) => i * keys),
      out,
    };
    for (let i = 0; i < 100; i++) await e().attentionVarlen(q, k, v, o);
    await e().synchronize();
    const before = { live: cudaAddon().liveBytes(), pool: cudaAddon().poolBytes() };
    for (let i = 0; i < 10_000; i++) await e().attentionVarlen(q, k, v, o);
    await e().synchronize();
    expect(cudaAddon().liveBytes()).toBe(before.live);
    expect(cudaAddon().poolBytes().used).toBeLessThanOrEqual(before.pool.used + (1 << 20));
    expect(cudaAddon().poolBytes().reserved).toBeLessThanOrEqual(before.pool.reserved + (32 << 20));
    for (const x of [q, k, v, out]) x.dispose();
  }, 120_000);

  it('back-to-back kernels leave the GPU idle under 50 us between them, and dependent launch shortens it', async () => {
    // The probe of bench/gpu/gaps.mjs (cuda/probe.h): kernels that spin 20 us, stamped with %globaltimer.
    const addon = cudaAddon()!;
    const ctx = new addon.Context();
    const gaps = async (dependent: boolean) => {
      const g = await addon.launchGaps(ctx, { launches: 60, blocks: 132, spinUs: 20, dependent, allocBetween: 0 });
      expect(g.length).toBe(59);
      for (const x of g) expect(x).toBeGreaterThan(-20); // a block cannot start before its launch's wait
      return g.sort((x, y) => x - y)[29]!;
    };
    const [pdl, plain] = [await gaps(true), await gaps(false)];
    expect(pdl).toBeLessThan(50);
    expect(plain).toBeLessThan(50);
    expect(pdl).toBeLessThanOrEqual(plain + 0.25); // (equal where the GPU has no dependent launch, before sm_90)
    await ctx.dispose();
  });

  it('dispose waits for the calls in flight; later calls are refused', async () => {
    const other = await createEngine({ backend: 'cuda' });
    const [q, k, v] = await Promise.all([other.upload(t(L)), other.upload(t(L)), other.upload(t(L))]);
    const device = Array.from({ length: 20 }, () => other.attentionVarlen(q, k, v, opts));
    const host = Array.from({ length: 3 }, () => other.attentionVarlen(t(L), t(L), t(L), opts));
    const settled = Promise.allSettled([...device, ...host]);
    await other.dispose();
    for (const s of await settled) expect(s.status).toBe('fulfilled');
    await expect(other.attentionVarlen(q, k, v, opts)).rejects.toThrow(/disposed/);
    await expect(other.synchronize()).rejects.toThrow(/disposed/);
    for (const x of [q, k, v]) x.dispose();
  });

  it('typed arrays reused right after the call (their contents overwritten) do not change it', async () => {
    const host = [t(L), t(L), t(L)] as const;
    const want = await e().attentionVarlen(host[0], host[1], host[2], opts);
    const copies = host.map((x) => ({ ...x, data: (x.data as Uint16Array).slice() }));
    const pending = e().attentionVarlen(copies[0]!, copies[1]!, copies[2]!, opts);
    for (const c of copies) (c.data as Uint16Array).fill(0x7e00); // NaN everywhere, at once
    expect((await pending).out.data).toEqual(want.out.data);
  });

  it('large typed arrays (many 4 MiB chunks, copied side by side) round-trip and feed a call bit for bit', async () => {
    // A decode-shaped call with 2 x 12,000 keys: K and V are 49 MB each, 12 chunks apiece.
    const [sk, hk] = [12_000, 8];
    const big = (rows: number, heads: number): Tensor => ({
      data: encode(randn(next, rows * heads * 128), 'float16'),
      shape: [rows, heads, 128],
      dtype: 'float16',
    });
    const q = big(2, 32);
    const k = big(2 * sk, hk);
    const v = big(2 * sk, hk);
    const o: VarlenOptions = { cuSeqlensQ: Int32Array.of(0, 1, 2), cuSeqlensK: Int32Array.of(0, sk, 2 * sk) };
    const dk = await e().upload(k);
    expect(firstDiff(await e().download(dk), k), 'k after a round trip').toBe(-1); // (toEqual is slow on 25M elements)
    const [dq, dv] = await Promise.all([e().upload(q), e().upload(v)]);
    const want = await e().download((await e().attentionVarlen(dq, dk, dv, o)).out as DeviceTensor);
    const kData = (k.data as Uint16Array).slice();
    const pending = e().attentionVarlen(q, { ...k, data: kData }, v, o);
    kData.fill(0x7e00); // overwritten as soon as the call returns
    expect(firstDiff((await pending).out as Tensor, want)).toBe(-1);
    for (const x of [dq, dk, dv]) x.dispose();
  });

  it('a kernel fault surfaces at the next wait with the CUDA message; the process does not abort', () => {
    // In a child process: a fault leaves the CUDA context unusable for the rest of its process.
    const backend = new URL('../dist/cuda/backend.js', import.meta.url).pathname;
    const script = `
      import { cudaAddon } from ${JSON.stringify(backend)};
      const addon = cudaAddon();
      const ctx = new addon.Context();
      addon.trap(ctx);
      const err = await ctx.synchronize().then(() => null, (e) => e);
      console.log(JSON.stringify({ message: err && err.message }));
    `;
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(run.status, run.stderr).toBe(0);
    const { message } = JSON.parse(run.stdout.trim().split('\n').pop()!);
    expect(message).toMatch(/^the GPU work of this engine failed: cudaError\w+: /);
  });
});
