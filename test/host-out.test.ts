// Results of calls on host tensors written into the caller's arrays (options.out / options.lse), on every
// engine of test/engines.ts that takes host tensors (wasm at 1 and 2 threads here; the cuda engine where a GPU
// is): the same objects come back, every element written (the arrays are poisoned with NaN first), bit for bit
// the results into fresh arrays, for attention, attentionVarlen and attentionWithKvCache; out sharing memory
// with an input; arrays from engine.hostTensor as inputs and as out; calls in flight together.
import { afterAll, describe, expect, it } from 'vitest';
import { encode } from '../src/half.js';
import type { KvCacheCallOptions } from '../src/kvcache/types.js';
import type { AttentionOptions, DType, Engine, Tensor, VarlenOptions } from '../src/types.js';
import { firstDiff, loadKvCache } from './conformance/kvcache.js';
import { freshSeed, randn, rng } from './conformance/random.js';
import { enginesUnderTest } from './engines.js';
import { scenario } from './kvcache-helpers.js';

const seed = freshSeed();
const engines = (await enginesUnderTest()).filter((e) => !e.device);
afterAll(async () => {
  for (const e of engines) await e.engine?.dispose();
});

const DTYPES: DType[] = ['float32', 'float16', 'bfloat16'];
const NAN16 = { float16: 0x7e00, bfloat16: 0x7fc0 } as const;
const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** An array to write into, every element NaN. */
function poisoned(shape: number[], dtype: DType): Tensor {
  const n = size(shape);
  const data = dtype === 'float32' ? new Float32Array(n).fill(NaN) : new Uint16Array(n).fill(NAN16[dtype]);
  return { data, shape, dtype };
}

const randomTensor = (next: () => number, shape: number[], dtype: DType): Tensor => ({
  data: encode(randn(next, size(shape)), dtype),
  shape,
  dtype,
});

/** `into` holds `fresh`'s bits (so every element was written: the results hold no NaN). */
function expectSame(into: Tensor, fresh: Tensor, what: string): void {
  expect(into.shape, what).toEqual([...fresh.shape]);
  expect(firstDiff(into, fresh), `${what}: first differing byte`).toBe(-1);
  const values = into.dtype === 'float32' ? Array.from(into.data) : [];
  expect(values.some(Number.isNaN), `${what}: a NaN left`).toBe(false);
}

type Result = { out: Tensor; lse?: Tensor };

for (const e of engines) {
  const why = e.engine ? '' : ` (skipped: ${e.reason})`;
  describe.skipIf(!e.engine)(`host out and lse on ${e.name}${why} (seed ${seed})`, () => {
    const engine = () => e.engine as Engine;

    it.each(DTYPES)('attention into the caller’s arrays: %s', async (dtype) => {
      const next = rng(seed);
      const q = randomTensor(next, [2, 5, 4, 16], dtype),
        k = randomTensor(next, [2, 7, 2, 16], dtype),
        v = randomTensor(next, [2, 7, 2, 8], dtype);
      const o: AttentionOptions = { causal: true, window: [3, 0] };
      const fresh = (await engine().attention(q, k, v, { ...o, returnLse: true })) as Result;
      const out = poisoned([2, 5, 4, 8], dtype),
        lse = poisoned([2, 4, 5], 'float32');
      const r = (await engine().attention(q, k, v, { ...o, out, lse })) as Result;
      expect(r.out).toBe(out);
      expect(r.lse).toBe(lse);
      expectSame(out, fresh.out, 'out');
      expectSame(lse, fresh.lse!, 'lse');
    });

    it.each(DTYPES)('attentionVarlen into the caller’s arrays, out alone and lse alone: %s', async (dtype) => {
      const next = rng(seed + 1);
      const q = randomTensor(next, [8, 4, 16], dtype),
        k = randomTensor(next, [13, 1, 16], dtype),
        v = randomTensor(next, [13, 1, 16], dtype);
      const o: VarlenOptions = { cuSeqlensQ: Int32Array.of(0, 3, 3, 8), cuSeqlensK: Int32Array.of(0, 6, 7, 13) };
      const fresh = (await engine().attentionVarlen(q, k, v, { ...o, returnLse: true, softcap: 5 })) as Result;
      const out = poisoned([8, 4, 16], dtype),
        lse = poisoned([4, 8], 'float32');
      const both = (await engine().attentionVarlen(q, k, v, { ...o, softcap: 5, out, lse })) as Result;
      expect(both.out).toBe(out);
      expectSame(out, fresh.out, 'out');
      expectSame(lse, fresh.lse!, 'lse');
      const out2 = poisoned([8, 4, 16], dtype);
      const alone = (await engine().attentionVarlen(q, k, v, { ...o, softcap: 5, out: out2 })) as Result;
      expect(alone.out).toBe(out2);
      expect(alone.lse).toBeUndefined();
      expectSame(out2, fresh.out, 'out alone');
      const lse2 = poisoned([4, 8], 'float32');
      const lseOnly = (await engine().attentionVarlen(q, k, v, { ...o, softcap: 5, lse: lse2 })) as Result;
      expect(lseOnly.lse).toBe(lse2);
      expectSame(lseOnly.out, fresh.out, 'out beside lse alone');
      expectSame(lse2, fresh.lse!, 'lse alone');
    });

    it.each(DTYPES)('attentionWithKvCache into the caller’s arrays, the cache written alike: %s', async (dtype) => {
      const s = scenario({
        seed: seed + 2,
        seqs: [
          { c: 5, n: 2, lq: 2 },
          { c: 9, n: 1, lq: 1 },
        ],
        blockSize: 4,
        dtype,
      });
      const o: KvCacheCallOptions = {
        cuSeqlensQ: s.cuSeqlensQ,
        cacheSeqlens: s.cacheSeqlens,
        blockTable: s.blockTable,
        kNew: s.kNew,
        vNew: s.vNew,
        causal: true,
      };
      const [a, b] = [await loadKvCache(engine(), s), await loadKvCache(engine(), s)];
      try {
        const fresh = (await engine().attentionWithKvCache(s.q, a, { ...o, returnLse: true })) as Result;
        const out = poisoned([3, s.numHeads, s.headDimV], dtype),
          lse = poisoned([s.numHeads, 3], 'float32');
        const r = (await engine().attentionWithKvCache(s.q, b, { ...o, out, lse })) as Result;
        expect(r.out).toBe(out);
        expect(r.lse).toBe(lse);
        expectSame(out, fresh.out, 'out');
        expectSame(lse, fresh.lse!, 'lse');
        expect(firstDiff(await engine().download(b.k), await engine().download(a.k)), 'cache.k').toBe(-1);
        // out in q's own array: q is read before anything is written
        const q = { ...s.q, data: s.q.data.slice() };
        const self = (await engine().attentionWithKvCache(q, a, { ...o, out: q })) as Result;
        expect(self.out).toBe(q);
        const again = (await engine().attentionWithKvCache(s.q, b, o)) as Result;
        expectSame(q, again.out, 'out in q.data');
      } finally {
        a.dispose();
        b.dispose();
      }
    });

    it.each(['q', 'k', 'v'] as const)('out may be the very array of %s (inputs are read first)', async (input) => {
      const next = rng(seed + 3);
      const shape = [2, 9, 4, 16];
      const q = randomTensor(next, shape, 'float32'),
        k = randomTensor(next, shape, 'float32'),
        v = randomTensor(next, shape, 'float32');
      const fresh = (await engine().attention(q, k, v, { causal: true, returnLse: true })) as Result;
      const inputs = {
        q: { ...q, data: q.data.slice() },
        k: { ...k, data: k.data.slice() },
        v: { ...v, data: v.data.slice() },
      };
      const out = inputs[input];
      const r = (await engine().attention(inputs.q, inputs.k, inputs.v, { causal: true, out })) as Result;
      expect(r.out).toBe(out);
      expectSame(out, fresh.out, `out in ${input}.data`);
    });

    it('tensors of engine.hostTensor as inputs and as out and lse', async () => {
      const next = rng(seed + 4);
      const src = randomTensor(next, [1, 6, 2, 8], 'bfloat16');
      const q = engine().hostTensor([1, 6, 2, 8], 'bfloat16');
      expect(q.data).toEqual(new Uint16Array(96));
      (q.data as Uint16Array).set(src.data);
      const out = engine().hostTensor([1, 6, 2, 8], 'bfloat16'),
        lse = engine().hostTensor([1, 2, 6], 'float32');
      const r = (await engine().attention(q, q, q, { out, lse })) as Result;
      expect([r.out === out, r.lse === lse]).toEqual([true, true]);
      const fresh = (await engine().attention(src, src, src, { returnLse: true })) as Result;
      expectSame(out, fresh.out, 'out');
      expectSame(lse, fresh.lse!, 'lse');
    });

    it('calls in flight together each fill their own arrays', async () => {
      const next = rng(seed + 5);
      const calls = Array.from({ length: 4 }, () => {
        const q = randomTensor(next, [1, 3, 2, 8], 'float16'),
          k = randomTensor(next, [1, 40, 1, 8], 'float16');
        return { q, k, out: poisoned([1, 3, 2, 8], 'float16'), lse: poisoned([1, 2, 3], 'float32') };
      });
      const run = calls.map((c) => engine().attention(c.q, c.k, c.k, { out: c.out, lse: c.lse }));
      await Promise.all(run);
      for (const [i, c] of calls.entries()) {
        const fresh = (await engine().attention(c.q, c.k, c.k, { returnLse: true })) as Result;
        expectSame(c.out, fresh.out, `call ${i} out`);
        expectSame(c.lse, fresh.lse!, `call ${i} lse`);
      }
    });

    it.skipIf(!e.name.startsWith('wasm'))('wasm-resident q, k and v: host out and lse', async () => {
      const next = rng(seed + 6);
      const q = randomTensor(next, [1, 4, 2, 8], 'float32'),
        k = randomTensor(next, [1, 30, 2, 8], 'float32');
      const [qr, kr] = [await engine().upload(q), await engine().upload(k)];
      try {
        const out = poisoned([1, 4, 2, 8], 'float32'),
          lse = poisoned([1, 2, 4], 'float32');
        const r = (await engine().attention(qr, kr, kr, { out, lse })) as unknown as Result;
        expect([r.out === out, r.lse === lse]).toEqual([true, true]);
        const fresh = (await engine().attention(q, k, k, { returnLse: true })) as Result;
        expectSame(out, fresh.out, 'out');
        expectSame(lse, fresh.lse!, 'lse');
      } finally {
        qr.dispose();
        kr.dispose();
      }
    });
  });
}
