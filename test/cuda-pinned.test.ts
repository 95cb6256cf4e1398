// Host tensors in page-locked memory on the cuda engine (engine.hostTensor, csrc/pinned.h): calls from
// them and results into them (options.out / options.lse on a host call) go by one DMA each way, with no
// staging. Their results must equal the pageable path's bit for bit, every output element written, and
// the memory must go back when the arrays are collected, even with a copy from one still queued.
// Skips without a GPU, with the reason.
import { afterAll, describe, expect, it } from 'vitest';
import { firstDiff } from './conformance/kvcache.js';
import { randn, rng } from './conformance/random.js';
import { cudaAddon } from '../src/cuda/backend.js';
import { encode } from '../src/half.js';
import { cudaEngineOrReason, inChildWithGc } from './cuda-helpers.js';
import type { DType, Tensor, VarlenOptions } from '../src/types.js';

const { engine, reason } = await cudaEngineOrReason('cuda pinned host tensor tests');
afterAll(async () => {
  await engine?.dispose();
});
const e = () => engine!;
const seed = 2026;
const next = rng(seed);
const [L, H, Hk, D] = [260, 4, 2, 64];
const opts: VarlenOptions = { cuSeqlensQ: Int32Array.of(0, 60, L), cuSeqlensK: Int32Array.of(0, 60, L), causal: true };

/** Random values in a pageable array and the same values in a pinned one. */
function pair(shape: number[], dtype: DType): { pageable: Tensor; pinned: Tensor } {
  const n = shape.reduce((a, b) => a * b, 1);
  const values = randn(next, n);
  const data = dtype === 'float32' ? Float32Array.from(values) : encode(values, dtype);
  const pinned = e().hostTensor(shape, dtype);
  pinned.data.set(data as never);
  return { pageable: { data, shape, dtype }, pinned };
}

describe.skipIf(!engine)(`cuda pinned host tensors${engine ? '' : ` (skipped: ${reason})`}`, () => {
  it('hostTensor: zeroed, shaped, page-locked (counted by the addon)', () => {
    const before = cudaAddon()!.livePinnedBytes();
    const t = e().hostTensor([3, 5, 7], 'bfloat16');
    expect(t.shape).toEqual([3, 5, 7]);
    expect(t.dtype).toBe('bfloat16');
    expect(t.data).toBeInstanceOf(Uint16Array);
    expect(t.data.length).toBe(105);
    expect(t.data.every((x) => x === 0)).toBe(true);
    expect(cudaAddon()!.livePinnedBytes() - before).toBe(210);
    const f = e().hostTensor([4, 2], 'float32');
    expect(f.data).toBeInstanceOf(Float32Array);
    expect(cudaAddon()!.livePinnedBytes() - before).toBe(210 + 32);
  });

  for (const dtype of ['float16', 'bfloat16', 'float32'] as const)
    it(`${dtype}: a call from pinned q, k, v into pinned out and lse equals the pageable call bit for bit (seed ${seed})`, async () => {
      const q = pair([L, H, D], dtype),
        k = pair([L, Hk, D], dtype),
        v = pair([L, Hk, D], dtype);
      const want = await e().attentionVarlen(q.pageable, k.pageable, v.pageable, { ...opts, returnLse: true });
      const out = e().hostTensor([L, H, D], dtype);
      const lse = e().hostTensor([H, L], 'float32');
      for (let round = 0; round < 2; round++) {
        // Poisoned each round: every element must be written again.
        if (dtype === 'float32') (out.data as Float32Array).fill(Number.NaN);
        else (out.data as Uint16Array).fill(0x7fff);
        (lse.data as Float32Array).fill(Number.NaN);
        const r = await e().attentionVarlen(q.pinned, k.pinned, v.pinned, { ...opts, out, lse });
        expect(r.out).toBe(out);
        expect(r.lse).toBe(lse);
        expect(firstDiff(out, want.out as Tensor), `out, round ${round}`).toBe(-1);
        expect(firstDiff(lse, want.lse as Tensor), `lse, round ${round}`).toBe(-1);
      }
    });

  it('a view inside a pinned buffer (an offset into it) is copied from and into directly, and correctly', async () => {
    const n = L * H * D;
    const q = pair([L, H, D], 'float16');
    const big = e().hostTensor([3 * n], 'float16');
    big.data.set(q.pageable.data as Uint16Array, n); // q in the middle third
    const view: Tensor = { data: (big.data as Uint16Array).subarray(n, 2 * n), shape: [L, H, D], dtype: 'float16' };
    const k = pair([L, Hk, D], 'float16'),
      v = pair([L, Hk, D], 'float16');
    const want = await e().attentionVarlen(q.pageable, k.pageable, v.pageable, opts);
    const outView: Tensor = {
      data: (big.data as Uint16Array).subarray(2 * n, 3 * n),
      shape: [L, H, D],
      dtype: 'float16',
    };
    const r = await e().attentionVarlen(view, k.pinned, v.pinned, { ...opts, out: outView });
    expect(firstDiff(r.out as Tensor, want.out as Tensor)).toBe(-1);
    expect(firstDiff(view, q.pageable), 'the input third is untouched').toBe(-1);
  });

  it('upload from and download of pinned tensors round-trip', async () => {
    const x = pair([L, H, D], 'bfloat16');
    const d = await e().upload(x.pinned);
    expect(firstDiff(await e().download(d), x.pageable)).toBe(-1);
    d.dispose();
  });

  it('a KV cache call from pinned q, kNew, vNew into a pinned out equals the pageable call', async () => {
    const make = () => e().createKvCache({ numBlocks: 8, blockSize: 16, numKvHeads: Hk, headDim: D, dtype: 'float16' });
    const [c1, c2] = await Promise.all([make(), make()]);
    const q = pair([2, H, D], 'float16'),
      kn = pair([2, Hk, D], 'float16'),
      vn = pair([2, Hk, D], 'float16');
    const base = {
      cuSeqlensQ: Int32Array.of(0, 1, 2),
      cacheSeqlens: Int32Array.of(20, 33),
      blockTable: Int32Array.of(0, 1, 2, 3, 4, 5, 6, 7),
    };
    const want = await e().attentionWithKvCache(q.pageable, c1, { ...base, kNew: kn.pageable, vNew: vn.pageable });
    const out = e().hostTensor([2, H, D], 'float16');
    (out.data as Uint16Array).fill(0x7fff);
    const r = await e().attentionWithKvCache(q.pinned, c2, { ...base, kNew: kn.pinned, vNew: vn.pinned, out });
    expect(r.out).toBe(out);
    expect(firstDiff(out, want.out as Tensor)).toBe(-1);
    c1.dispose();
    c2.dispose();
  });

  it('collected pinned arrays give their memory back, also with a copy from one still queued', () => {
    // In a child process with --expose-gc, through the built package.
    const { peak, left } = inChildWithGc(`
      const base = addon.livePinnedBytes();
      let peak = 0;
      // In a function of its own, so that no frame of the test keeps the last array alive.
      const loop = async () => { for (let i = 0; i < 20; i++) {
        // 64 MiB, uploaded (the copy is queued when upload returns), then dropped at once.
        const t = engine.hostTensor([32 << 20], 'float16');
        t.data.fill(i);
        const d = await engine.upload(t);
        peak = Math.max(peak, addon.livePinnedBytes() - base);
        d.dispose();
        globalThis.gc();
        await new Promise((r) => setImmediate(r)); // Node-API finalizers run after the collection, in a later task
      } };
      await loop();
      await engine.synchronize();
      for (let i = 0; i < 5; i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 20)); }
      console.log(JSON.stringify({ peak, left: addon.livePinnedBytes() - base }));
    `);
    expect(peak).toBeLessThanOrEqual(3 * (64 << 20)); // collected as the loop goes, not all 20 kept
    expect(left).toBe(0);
  });
});
