// The cuda engine's KV cache (src/cuda/kvcache.ts; the kernels read K/V through the block table, cuda/params.h
// keyRow): every case of test/conformance/kvcache-cases.ts (test/conformance/kvcache.ts: the float64
// reference, bit for bit against the same engine's attentionVarlen on the keys laid end to end, the cache's
// contents after), the same cases with device q/kNew/vNew, against the wasm engine, a decode loop driven by
// KvBlocks, a rejected call leaving the cache bit for bit as it was, and dispose freeing the pool. Skips
// without a GPU, with the reason.
import { afterAll, describe, expect, it } from 'vitest';
import { cudaAddon, loadCudaBackend } from '../src/cuda/backend.js';
import { encode } from '../src/half.js';
import { KvBlocks } from '../src/kvcache/blocks.js';
import { referenceAttentionWithKvCache } from '../src/kvcache/reference.js';
import type { KvCacheCallOptions } from '../src/kvcache/types.js';
import { createEngine } from '../src/node.js';
import type { DeviceTensor, Engine, Tensor } from '../src/types.js';
import { firstDiff, kvNearFailure, loadKvCache, runKvCase } from './conformance/kvcache.js';
import { kvCases as cases } from './conformance/kvcache-cases.js';
import { randn, rng } from './conformance/random.js';
import { callOptions, freshSeed, scenario } from './kvcache-helpers.js';

let reason = '';
let engine: Engine | null = null;
let wasm: Engine | null = null;
try {
  await loadCudaBackend();
  engine = await createEngine({ backend: 'cuda' });
  wasm = await createEngine({ backend: 'wasm', threads: 1 });
} catch (e) {
  reason = (e as Error).message;
  console.log(`[flashattn] cuda KV cache tests skipped: ${reason}`);
}
afterAll(async () => {
  await engine?.dispose();
  await wasm?.dispose();
});
const e = () => engine!;
const seed = freshSeed();

describe.skipIf(!engine)(
  `cuda KV cache (seed ${seed}; replay with FLASHATTN_SEED=${seed})${engine ? '' : ` (skipped: ${reason})`}`,
  () => {
    it.each(cases)('%s', async (_name, c) => {
      const salt = seed + cases.findIndex(([, x]) => x === c);
      const r = await runKvCase(e(), c, salt);
      expect(r.failures).toEqual([]);
      // The same call on the wasm engine: within the coarser engine's bound of each other.
      const w = await runKvCase(wasm!, c, salt);
      expect(w.failures).toEqual([]);
      const asRef = (t: Tensor) => Float64Array.from(t.data as ArrayLike<number>);
      if (c.shape?.dtype === undefined || c.shape.dtype === 'float32')
        expect(kvNearFailure(r.out, asRef(w.out), 'cuda out vs wasm', 'float16')).toBeNull();
      expect(firstDiff(r.k, w.k), 'cache.k on both engines').toBe(-1);
    });

    it('device q, kNew and vNew give the host call bit for bit, as device results', async () => {
      const c = cases.find(([n]) => /decode with splits/.test(n) && /bfloat16/.test(n))![1];
      const s = scenario({ seed, seqs: c.seqs, blockSize: c.blockSize, ...c.shape });
      const o = callOptions(c, s);
      const host = await loadKvCache(e(), s);
      const want = await e().attentionWithKvCache(s.q, host, o);
      const dev = await loadKvCache(e(), s);
      const [q, kNew, vNew] = await Promise.all([e().upload(s.q), e().upload(s.kNew), e().upload(s.vNew)]);
      const got = await e().attentionWithKvCache(q, dev, { ...o, kNew, vNew });
      expect(got.out.location).toBe('cuda');
      const out = await e().download(got.out as DeviceTensor);
      expect(firstDiff(out, want.out as Tensor)).toBe(-1);
      expect(firstDiff(await e().download(dev.k), await e().download(host.k))).toBe(-1);
      for (const x of [q, kNew, vNew, got.out as DeviceTensor]) x.dispose();
      host.dispose();
      dev.dispose();
    });

    it('a block table over a staging chunk (4 MiB of metadata) is uploaded instead, with the same results', async () => {
      // The metadata normally goes to the GPU through a lent staging chunk that the first kernel reads;
      // past one chunk it is copied on the stream. Each sequence's row, widened with unused entries.
      const c = cases.find(([n]) => /decode with splits/.test(n) && /bfloat16/.test(n))![1];
      const s = scenario({ seed, seqs: c.seqs, blockSize: c.blockSize, ...c.shape });
      const o = callOptions(c, s);
      const batch = o.cacheSeqlens.length,
        m = o.blockTable.length / batch;
      const wide = m + Math.ceil((1.1 * (1 << 20)) / batch);
      const table = new Int32Array(batch * wide).fill(-1);
      for (let b = 0; b < batch; b++) table.set(o.blockTable.subarray(b * m, (b + 1) * m), b * wide);
      const [narrow, widened] = [await loadKvCache(e(), s), await loadKvCache(e(), s)];
      const want = await e().attentionWithKvCache(s.q, narrow, o);
      const got = await e().attentionWithKvCache(s.q, widened, { ...o, blockTable: table });
      expect(firstDiff(got.out as Tensor, want.out as Tensor)).toBe(-1);
      expect(firstDiff(await e().download(widened.k), await e().download(narrow.k))).toBe(-1);
      expect(firstDiff(await e().download(widened.v), await e().download(narrow.v))).toBe(-1);
      narrow.dispose();
      widened.dispose();
    });

    it('a decode loop driven by KvBlocks matches the reference at every step', async () => {
      const [H, Hk, D, B] = [8, 2, 64, 3];
      const next = rng(seed);
      const cache = await e().createKvCache({
        numBlocks: 64,
        blockSize: 16,
        numKvHeads: Hk,
        headDim: D,
        dtype: 'float16',
      });
      const blocks = new KvBlocks(cache);
      const seqs = [0, 1, 2].map(() => blocks.addSequence());
      const t = (rows: number, heads: number): Tensor => ({
        data: encode(randn(next, rows * heads * D), 'float16'),
        shape: [rows, heads, D],
        dtype: 'float16',
      });
      const step = async (lens: number[]) => {
        const cu = Int32Array.from([0, ...lens.map((_, i) => lens.slice(0, i + 1).reduce((a, b) => a + b, 0))]);
        const total = cu[B]!;
        const o: KvCacheCallOptions = {
          ...blocks.batch(seqs, lens),
          cuSeqlensQ: cu,
          kNew: t(total, Hk),
          vNew: t(total, Hk),
          causal: true,
        };
        const q = t(total, H);
        const ref = referenceAttentionWithKvCache(
          q,
          { k: await e().download(cache.k), v: await e().download(cache.v) },
          o,
        );
        const r = await e().attentionWithKvCache(q, cache, o);
        expect(kvNearFailure(r.out as Tensor, ref.out64, 'out')).toBeNull();
        expect(firstDiff(await e().download(cache.k), ref.cache.k)).toBe(-1);
      };
      // Whether each call's work list came from the plan cache (the addon's answer, through a spy).
      const addon = cudaAddon()!;
      const attention = addon.attention;
      const reused: boolean[] = [];
      addon.attention = ((...args: Parameters<typeof attention>) => {
        const r = attention.apply(addon, args) as unknown;
        reused.push(addon.lastPlan(args[0]).planReused);
        return r;
      }) as typeof attention;
      try {
        await step([37, 5, 58]); // prefill
        for (let i = 0; i < 12; i++) await step([1, 1, 1]); // the third sequence crosses key tile 64
        await step([3, 1, 2]); // speculative rows
      } finally {
        addon.attention = attention;
      }
      // A paged call's plan depends on the key tiles, not the keys: the decode steps replan only when the
      // third sequence enters its next tile (and the first step after the prefill).
      expect(reused.slice(1, 13).filter((x) => !x).length).toBeLessThanOrEqual(2);
      cache.dispose();
    });

    it('a rejected call (kNew of another engine) leaves the cache bit for bit as it was', async () => {
      const c = cases[0]![1];
      const s = scenario({ seed, seqs: c.seqs, blockSize: c.blockSize, ...c.shape });
      const cache = await loadKvCache(e(), s);
      const before = await e().download(cache.k);
      const other = await createEngine({ backend: 'cuda' });
      const foreign = await other.upload(s.kNew);
      await expect(e().attentionWithKvCache(s.q, cache, { ...callOptions(c, s), kNew: foreign })).rejects.toThrow(
        /another cuda engine/,
      );
      const { cacheSeqlens, blockTable, cuSeqlensNew } = s;
      await expect(
        e().writeKvCache(cache, foreign, s.vNew, { cacheSeqlens, blockTable, cuSeqlensNew }),
      ).rejects.toThrow(/another cuda engine/);
      expect(firstDiff(await e().download(cache.k), before)).toBe(-1);
      foreign.dispose();
      await other.dispose();
      cache.dispose();
    });

    it('dispose frees the pool; a disposed cache is refused; engine dispose frees the rest', async () => {
      const live = cudaAddon()!.liveBytes();
      const spec = { numBlocks: 100, blockSize: 16, numKvHeads: 2, headDim: 64, dtype: 'bfloat16' as const };
      const cache = await e().createKvCache(spec);
      expect(cudaAddon()!.liveBytes() - live).toBe(2 * 100 * 16 * 2 * 64 * 2);
      cache.k.dispose(); // the cache's own: does nothing
      expect(cudaAddon()!.liveBytes() - live).toBe(2 * 100 * 16 * 2 * 64 * 2);
      cache.dispose();
      expect(cache.disposed).toBe(true);
      expect(cudaAddon()!.liveBytes()).toBe(live);
      const q: Tensor = { data: new Uint16Array(4 * 64), shape: [1, 4, 64], dtype: 'bfloat16' };
      await expect(
        e().attentionWithKvCache(q, cache, {
          cuSeqlensQ: Int32Array.of(0, 1),
          cacheSeqlens: Int32Array.of(0),
          blockTable: Int32Array.of(0),
        }),
      ).rejects.toThrow(/disposed/);
      const other = await createEngine({ backend: 'cuda' });
      const kept = await other.createKvCache(spec);
      await other.dispose();
      expect(kept.disposed).toBe(true);
    });
  },
);
