// What a valid KV cache call hands the engine (src/kvcache/problem.ts): the validated problem, with copies of
// the caller's arrays, the attention fields against Lk = c + n, and nothing checked that is never read.
import { beforeAll, describe, expect, it } from 'vitest';
import { engineFromBackend } from '../src/engine.js';
import type { KvCacheCallOptions } from '../src/kvcache/types.js';
import {
  T,
  base,
  caches,
  engine,
  kNew,
  makeCaches,
  other,
  q,
  seen,
  spec,
  vNew,
  writeBase,
  spyBackend,
} from './kvcache-spy.js';

describe('what a valid call hands the engine', () => {
  beforeAll(makeCaches);
  it('createKvCache: the options with defaults', async () => {
    const made = await engine.createKvCache({ numBlocks: 3, blockSize: 5, numKvHeads: 1, headDim: 16 });
    expect(made).toMatchObject({
      numBlocks: 3,
      blockSize: 5,
      numKvHeads: 1,
      headDim: 16,
      headDimV: 16,
      dtype: 'float32',
    });
  });

  it('writeKvCache: a KvWrite with copies of the arrays', async () => {
    const o = writeBase();
    await engine.writeKvCache(caches.cache, kNew, vNew, o);
    const p = seen.write!;
    expect(p.cache).toBe(caches.cache);
    expect(p).toMatchObject({
      batch: 2,
      totalNew: 3,
      maxBlocksPerSeq: 3,
      maxSeqlenNew: 2,
      maxSeqlenK: 6,
      numBlocks: 8,
      blockSize: 4,
    });
    expect([...p.seqlensK]).toEqual([6, 4]);
    o.blockTable[0] = 7;
    o.cacheSeqlens[0] = 0;
    expect(p.blockTable[0]).toBe(0);
    expect(p.cacheSeqlens[0]).toBe(5);
  });

  it('attentionWithKvCache: a KvProblem with the attention fields against Lk = c + n', async () => {
    const r = await engine.attentionWithKvCache(q, caches.cache, { ...base(), causal: true, window: [100, 0] });
    expect(r.lse).toBeUndefined();
    expect(r.out.shape).toEqual([3, 4, 8]);
    const p = seen.call!;
    expect(p.cache).toBe(caches.cache);
    expect(p).toMatchObject({
      batch: 2,
      totalQ: 3,
      totalNew: 3,
      numHeads: 4,
      numKvHeads: 2,
      headDim: 8,
      headDimV: 8,
      dtype: 'float32',
      maxSeqlenQ: 2,
      maxSeqlenK: 6,
      maxBlocksPerSeq: 3,
      windowLeft: -1, // 100 >= maxSeqlenQ + maxSeqlenK: unbounded
      windowRight: 0,
      softmaxScale: 1 / Math.sqrt(8),
      returnLse: false,
      fixedSeqlenQ: 0,
      outShape: [3, 4, 8],
      lseShape: [4, 3],
    });
    expect([...p.cuSeqlensNew]).toEqual([0, 1, 3]);
    expect([...p.seqlensK]).toEqual([6, 4]);
    expect(p.kNew).toMatchObject({ shape: [3, 2, 8], dtype: 'float32' });
    for (const key of ['k', 'v', 'cuSeqlensK', 'totalK']) expect(p).not.toHaveProperty(key);
    await engine.attentionWithKvCache(q, caches.cache, { ...base(), window: [3, 0] });
    expect(seen.call!.windowLeft).toBe(3);
  });

  it('a read-only call: no new rows', async () => {
    const o: KvCacheCallOptions = { ...base(), kNew: undefined, vNew: undefined, cacheSeqlens: Int32Array.of(8, 4) };
    await engine.attentionWithKvCache(q, caches.cache, o);
    const p = seen.call!;
    expect(p.kNew).toBeNull();
    expect(p.vNew).toBeNull();
    expect(p.totalNew).toBe(0);
    expect([...p.cuSeqlensNew]).toEqual([0, 0, 0]);
    expect([...p.seqlensK]).toEqual([8, 4]);
  });

  it("blocks past a sequence's last one are never looked at, and a batch of 0 is a call of nothing", async () => {
    await engine.attentionWithKvCache(q, caches.cache, { ...base(), blockTable: Int32Array.of(0, 1, 99, 2, -7, 1e6) });
    expect([...seen.call!.blockTable]).toEqual([0, 1, 99, 2, -7, 1e6]);
    await engine.attentionWithKvCache(T([0, 4, 8]), caches.cache, {
      cuSeqlensQ: Int32Array.of(0),
      cacheSeqlens: new Int32Array(0),
      blockTable: new Int32Array(0),
    });
    expect(seen.call).toMatchObject({ batch: 0, maxBlocksPerSeq: 0, totalQ: 0 });
  });

  it('a cache made by one engine is refused by another', async () => {
    await expect(other.attentionWithKvCache(q, caches.cache, base())).rejects.toThrow(TypeError);
    const e = engineFromBackend(spyBackend());
    const mine = await e.createKvCache(spec);
    await expect(engine.writeKvCache(mine, kNew, vNew, writeBase())).rejects.toThrow(/made by this wasm engine/);
  });
});
