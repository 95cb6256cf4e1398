// The wasm engine's KV cache across calls: a decode loop driven by KvBlocks (prefill, steps, a speculative
// step truncated, a sequence freed and its blocks reused), shared prefix blocks, writeKvCache with host and
// resident rows, rejected calls that leave the cache bit for bit as it was, dispose, and the finalizer.
// Needs `npm run build:wasm`.
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setKnobs } from '../src/knobs.js';
import { KvBlocks } from '../src/kvcache/blocks.js';
import { referenceAttentionWithKvCache } from '../src/kvcache/reference.js';
import type { KvCache, KvCacheCallOptions } from '../src/kvcache/types.js';
import { createEngine } from '../src/node.js';
import type { Engine, Tensor } from '../src/types.js';
import { wasmFiles } from '../src/wasm/backend.js';
import { randn, rng } from './conformance/random.js';
import { freshSeed, scenario } from './kvcache-helpers.js';
import { bundledScript, firstDiff } from './wasm-helpers.js';
import { expectNear, loadCache } from './wasm-kvcache-helpers.js';

const seed = freshSeed();
const f32 = (data: Float32Array, shape: number[]): Tensor => ({ data, shape, dtype: 'float32' });
const residentOf = (e: Engine) =>
  (e as unknown as { impl: { resident: { bytes: number; count: number } } }).impl.resident;
const contents = async (e: Engine, c: KvCache) => ({ k: await e.download(c.k), v: await e.download(c.v) });

/** One call on `e`, checked against the reference on the cache's contents before it, and the contents after. */
async function checkedCall(e: Engine, cache: KvCache, q: Tensor, o: KvCacheCallOptions): Promise<Tensor[]> {
  const ref = referenceAttentionWithKvCache(q, await contents(e, cache), o);
  const restore = setKnobs({ poisonOutputs: true });
  let r: Awaited<ReturnType<Engine['attentionWithKvCache']>>;
  try {
    r = await e.attentionWithKvCache(q, cache, { ...o, returnLse: true });
  } finally {
    restore();
  }
  expectNear(r.out as Tensor, ref.out64, 'out');
  const after = await contents(e, cache);
  expect(firstDiff(after.k, ref.cache.k), 'cache.k after the call').toBe(-1);
  expect(firstDiff(after.v, ref.cache.v), 'cache.v after the call').toBe(-1);
  return [r.out as Tensor, r.lse as Tensor];
}

describe(`wasm KV cache calls (seed ${seed}; replay with FLASHATTN_SEED=${seed})`, () => {
  const engines = new Map<number, Engine>();
  beforeAll(async () => {
    for (const t of [1, 2]) engines.set(t, await createEngine({ backend: 'wasm', threads: t }));
  });
  afterAll(async () => {
    for (const e of engines.values()) await e.dispose();
  });

  /** KvBlocks drives 8 calls on 3 sequences; returns every output. The same inputs on every engine. */
  async function decodeLoop(e: Engine): Promise<Tensor[]> {
    const H = 8,
      Hk = 2,
      D = 16;
    const next = rng(seed);
    const cache = await e.createKvCache({ numBlocks: 40, blockSize: 5, numKvHeads: Hk, headDim: D });
    const blocks = new KvBlocks(cache);
    const outs: Tensor[] = [];
    const step = async (seqs: number[], counts: number[], queries: number[], extra: object = {}) => {
      const totalQ = queries.reduce((a, b) => a + b, 0),
        totalNew = counts.reduce((a, b) => a + b, 0);
      const cuSeqlensQ = Int32Array.from([
        0,
        ...queries.map((_, i) => queries.slice(0, i + 1).reduce((a, b) => a + b)),
      ]);
      const o: KvCacheCallOptions = {
        ...blocks.batch(seqs, counts),
        cuSeqlensQ,
        kNew: f32(randn(next, totalNew * Hk * D), [totalNew, Hk, D]),
        vNew: f32(randn(next, totalNew * Hk * D), [totalNew, Hk, D]),
        causal: true,
        ...extra,
      };
      outs.push(...(await checkedCall(e, cache, f32(randn(next, totalQ * H * D), [totalQ, H, D]), o)));
    };
    try {
      const a = blocks.addSequence(),
        b = blocks.addSequence();
      await step([a, b], [23, 7], [23, 7]); // prefill two prompts
      for (let i = 0; i < 3; i++) await step([a, b], [1, 1], [1, 1]); // decode
      const c = blocks.addSequence();
      await step([a, b, c], [4, 1, 9], [4, 1, 9]); // a: 1 + 3 draft rows; c: a new prompt
      blocks.truncate(a, blocks.length(a) - 2); // two drafts rejected: their rows are written over next
      blocks.free(b); // b ends; its blocks go to d
      const d = blocks.addSequence();
      await step([c, a, d], [1, 1, 12], [1, 1, 2], { window: [6, 0] });
      await step([a, c, d], [1, 0, 1], [1, 1, 1]); // c only reads
      expect(blocks.length(a)).toBe(30);
      return outs;
    } finally {
      cache.dispose();
    }
  }

  it('a decode loop with KvBlocks: every call as the reference, the same bits at 1 and 2 threads', async () => {
    const one = await decodeLoop(engines.get(1)!),
      two = await decodeLoop(engines.get(2)!);
    expect(one.length).toBe(two.length);
    for (const [i, t] of one.entries()) expect(firstDiff(t, two[i]!), `result ${i}`).toBe(-1);
  });

  it('sequences share prefix blocks; every write comes before any read', async () => {
    const e = engines.get(2)!;
    const s = scenario({ seed, seqs: [{ c: 8, n: 0, lq: 0 }], blockSize: 4, spare: 4 });
    const cache = await loadCache(e, s);
    try {
      const free = [...Array(s.numBlocks).keys()].filter((b) => !Array.from(s.blockTable).includes(b));
      const [b0, b1] = [s.blockTable[0]!, s.blockTable[1]!];
      const n = scenario({ seed: seed + 1, seqs: [{ c: 0, n: 2, lq: 2 }], blockSize: 4 });
      // Two sequences read the same two prefix blocks and write one row each in a block of their own.
      await checkedCall(e, cache, n.q, {
        cuSeqlensQ: Int32Array.of(0, 1, 2),
        cacheSeqlens: Int32Array.of(8, 8),
        blockTable: Int32Array.of(b0, b1, free[0]!, b0, b1, free[1]!),
        kNew: n.kNew,
        vNew: n.vNew,
        causal: true,
      });
      // Sequence 1 reads the row sequence 0 writes in the block they share (sequence 0 has no query).
      const one = scenario({ seed: seed + 2, seqs: [{ c: 0, n: 1, lq: 1 }], blockSize: 4 });
      await checkedCall(e, cache, one.q, {
        cuSeqlensQ: Int32Array.of(0, 0, 1),
        cacheSeqlens: Int32Array.of(1, 2),
        blockTable: Int32Array.of(free[2]!, free[2]!),
        kNew: one.kNew,
        vNew: one.vNew,
        cuSeqlensNew: Int32Array.of(0, 1, 1),
      });
    } finally {
      cache.dispose();
    }
  });

  it('writeKvCache writes host or resident rows; a later call reads them; waiting calls keep the inputs they were given', async () => {
    for (const e of engines.values()) {
      const s = scenario({
        seed,
        seqs: [
          { c: 5, n: 3, lq: 2 },
          { c: 0, n: 6, lq: 1 },
        ],
        blockSize: 4,
      });
      const cache = await loadCache(e, s);
      const kr = await e.upload(s.kNew),
        vr = await e.upload(s.vNew);
      try {
        const w = { cacheSeqlens: s.cacheSeqlens, blockTable: s.blockTable, cuSeqlensNew: s.cuSeqlensNew };
        await e.writeKvCache(cache, kr, vr, w);
        let now = await contents(e, cache);
        expect(firstDiff(now.k, s.after.k)).toBe(-1);
        expect(firstDiff(now.v, s.after.v)).toBe(-1);
        // Read-only: the sequences now hold c + n rows.
        const lengths = Int32Array.from(s.cacheSeqlens, (c, b) => c + s.cuSeqlensNew[b + 1]! - s.cuSeqlensNew[b]!);
        const ro = { cuSeqlensQ: s.cuSeqlensQ, cacheSeqlens: lengths, blockTable: s.blockTable, causal: true };
        await checkedCall(e, cache, s.q, ro);
        // A write queued behind a call copies its host rows at once: changing them afterwards changes nothing.
        const kNew = { ...s.kNew, data: (s.kNew.data as Float32Array).map((x) => -x) };
        const busy = e.attentionWithKvCache(s.q, cache, ro);
        const queued = e.writeKvCache(cache, kNew, s.vNew, w);
        const expectK = (kNew.data as Float32Array).slice();
        (kNew.data as Float32Array).fill(7);
        await Promise.all([busy, queued]);
        now = await contents(e, cache);
        // Row 0 of kNew went to position 5 of sequence 0: block table[1], row 1.
        const rowK = s.numKvHeads * s.headDim;
        const at = (s.blockTable[1]! * s.blockSize + 1) * rowK;
        expect(Array.from(now.k.data.subarray(at, at + rowK))).toEqual(Array.from(expectK.subarray(0, rowK)));
      } finally {
        kr.dispose();
        vr.dispose();
        cache.dispose();
      }
    }
  });

  it("resident q, kNew and vNew give the host call's bits; a batch of 0 is a call of nothing", async () => {
    const e = engines.get(2)!;
    const s = scenario({ seed, seqs: [{ c: 40, n: 3, lq: 3 }], blockSize: 6, dtype: 'bfloat16' });
    const o = { cuSeqlensQ: s.cuSeqlensQ, cacheSeqlens: s.cacheSeqlens, blockTable: s.blockTable, causal: true };
    const host = await loadCache(e, s),
      res = await loadCache(e, s);
    const [q, k, v] = [await e.upload(s.q), await e.upload(s.kNew), await e.upload(s.vNew)];
    try {
      const a = await e.attentionWithKvCache(s.q, host, { ...o, kNew: s.kNew, vNew: s.vNew });
      const b = await e.attentionWithKvCache(q, res, { ...o, kNew: k, vNew: v });
      expect(firstDiff(a.out as Tensor, b.out as unknown as Tensor)).toBe(-1);
      expect(firstDiff(await e.download(host.v), await e.download(res.v))).toBe(-1);
      const none = await e.attentionWithKvCache({ ...s.q, data: new Uint16Array(0), shape: [0, 4, 8] }, host, {
        cuSeqlensQ: Int32Array.of(0),
        cacheSeqlens: new Int32Array(0),
        blockTable: new Int32Array(0),
        returnLse: true,
      });
      expect((none.out as Tensor).shape).toEqual([0, 4, 8]);
      expect((none.lse as Tensor).data.length).toBe(0);
    } finally {
      for (const t of [q, k, v, host, res]) t.dispose();
    }
  });

  it('a rejected call leaves the cache bit for bit as it was', async () => {
    const e = engines.get(2)!,
      other = engines.get(1)!;
    const s = scenario({
      seed,
      seqs: [
        { c: 5, n: 2, lq: 2 },
        { c: 3, n: 1, lq: 1 },
      ],
      blockSize: 4,
    });
    const cache = await loadCache(e, s);
    const before = await contents(e, cache);
    const good: KvCacheCallOptions = {
      cuSeqlensQ: s.cuSeqlensQ,
      cacheSeqlens: s.cacheSeqlens,
      blockTable: s.blockTable,
      kNew: s.kNew,
      vNew: s.vNew,
      cuSeqlensNew: s.cuSeqlensNew,
    };
    const m = s.maxBlocksPerSeq;
    const table = (i: number, id: number) => Int32Array.from(s.blockTable, (x, j) => (j === i ? id : x));
    const foreign = await other.upload(s.kNew),
      gone = await e.upload(s.kNew);
    gone.dispose();
    const bad: [string, KvCacheCallOptions, RegExp][] = [
      ['a block id past the pool', { ...good, blockTable: table(1, s.numBlocks) }, /block ids in \[0/],
      ['a negative block id', { ...good, blockTable: table(0, -1) }, /block ids in \[0/],
      ['more rows than the table holds', { ...good, cacheSeqlens: Int32Array.of(m * 4, 3) }, /maxBlocksPerSeq/],
      [
        'two sequences writing one row',
        { ...good, blockTable: table(m, s.blockTable[1]!), cacheSeqlens: Int32Array.of(5, 1) },
        /distinct/,
      ],
      ['kNew resident in another engine', { ...good, kNew: foreign }, /another engine/],
      ['kNew disposed', { ...good, kNew: gone }, /disposed/],
    ];
    try {
      for (const [what, o, msg] of bad) {
        await expect(e.attentionWithKvCache(s.q, cache, o), what).rejects.toThrow(msg);
        const { cuSeqlensQ: _q, kNew, vNew, ...w } = o;
        await expect(e.writeKvCache(cache, kNew!, vNew!, w as never), `${what} (write)`).rejects.toThrow(msg);
        const now = await contents(e, cache);
        expect(firstDiff(now.k, before.k), what).toBe(-1);
        expect(firstDiff(now.v, before.v), what).toBe(-1);
      }
      // Refused by the engine itself (more work items than it takes), after the façade accepted it.
      const batch = 2 ** 22 + 1;
      const tiny = await e.createKvCache({ numBlocks: 2, blockSize: 2, numKvHeads: 1, headDim: 1 });
      const tinyBefore = await contents(e, tiny);
      const cacheSeqlens = new Int32Array(batch).fill(1);
      const cuSeqlensNew = new Int32Array(batch + 1).fill(1);
      cuSeqlensNew[0] = 0;
      await expect(
        e.attentionWithKvCache(f32(new Float32Array(batch), [batch, 1, 1]), tiny, {
          cuSeqlensQ: Int32Array.from({ length: batch + 1 }, (_, i) => i),
          cacheSeqlens,
          blockTable: new Int32Array(batch), // every sequence reads block 0; sequence 0 writes its row 1
          kNew: f32(Float32Array.of(5), [1, 1, 1]),
          vNew: f32(Float32Array.of(5), [1, 1, 1]),
          cuSeqlensNew,
        }),
      ).rejects.toThrow(/work items/);
      expect(firstDiff((await contents(e, tiny)).k, tinyBefore.k)).toBe(-1);
      tiny.dispose();
    } finally {
      foreign.dispose();
      cache.dispose();
    }
  });

  it('dispose frees both regions, refuses the cache after, and a queued call fails cleanly', async () => {
    const e = engines.get(2)!;
    const start = residentOf(e);
    const s = scenario({ seed, seqs: [{ c: 5, n: 1, lq: 1 }], blockSize: 4 });
    const cache = await loadCache(e, s);
    const es = 4;
    expect(residentOf(e).count).toBe(start.count + 2);
    expect(residentOf(e).bytes).toBe(start.bytes + 2 * s.numBlocks * 4 * s.numKvHeads * s.headDim * es);
    cache.k.dispose(); // the cache's tensor: does nothing (dispose the cache)
    expect(residentOf(e).count).toBe(start.count + 2);
    const o = {
      cuSeqlensQ: s.cuSeqlensQ,
      cacheSeqlens: s.cacheSeqlens,
      blockTable: s.blockTable,
      kNew: s.kNew,
      vNew: s.vNew,
    };
    const first = e.attentionWithKvCache(s.q, cache, o);
    const second = e.attentionWithKvCache(s.q, cache, o);
    cache.dispose();
    cache.dispose();
    expect(cache.disposed).toBe(true);
    expect(residentOf(e)).toEqual(start);
    await expect(first).resolves.toBeDefined(); // it was running already
    await expect(second).rejects.toThrow(/not disposed/);
    await expect(e.attentionWithKvCache(s.q, cache, o)).rejects.toThrow(/not disposed/);
    await expect(e.download(cache.k)).rejects.toThrow(/its KV cache was disposed/);
    const e2 = await createEngine({ backend: 'wasm', threads: 1 });
    const c2 = await e2.createKvCache({ numBlocks: 1, blockSize: 1, numKvHeads: 1, headDim: 1 });
    await e2.dispose();
    expect(c2.disposed).toBe(true);
  });
});

describe('wasm KV cache: finalizer', () => {
  // A child process (bundled from src/ with esbuild, run with --expose-gc) forgets caches.
  const script = bundledScript(
    'flashattn-wasm-kv-gc-',
    (src) => `
      import { createWasmBackendWith } from ${src('../src/wasm/core.ts')};
      import { nodePlatform } from ${src('../src/wasm/platform-node.ts')};
      const files = { baseline: new URL(process.argv[2]), relaxed: new URL(process.argv[3]) };
      const b = await createWasmBackendWith(nodePlatform, files, { threads: 1 });
      const spec = { numBlocks: 10, blockSize: 10, numKvHeads: 1, headDim: 10, headDimV: 10, dtype: 'float32' };
      const kept = await b.createKvCache(spec);
      const k = (await b.createKvCache(spec)).k; // its cache is forgotten, but not its k
      await (async () => { for (let i = 0; i < 4; i++) await b.createKvCache(spec); })();
      const counts = [b.resident.count];
      for (let i = 0; i < 20 && b.resident.count > 4; i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 10)); }
      counts.push(b.resident.count, (await b.download(k)).data.length);
      kept.dispose();
      counts.push(b.resident.count);
      console.log(counts.join(' '));
    `,
  );

  it('frees the regions of caches nobody disposed once they (and their tensors) are collected', () => {
    const r = spawnSync(process.execPath, ['--expose-gc', script(), wasmFiles.baseline.href, wasmFiles.relaxed.href], {
      timeout: 20_000,
      encoding: 'utf8',
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('12 4 1000 2');
  });
});
