// referenceAttentionWithKvCache is docs/semantics.md's KV cache section written out: write the new rows, then
// attentionVarlen over each sequence's keys 0 .. c + n - 1. Checked against referenceAttentionVarlen on the
// same keys laid end to end, on seeded scenarios (test/kvcache-helpers.ts), and the cache's contents after.
import { describe, expect, it } from 'vitest';
import { referenceAttentionWithKvCache } from '../src/kvcache/reference.js';
import { referenceAttentionVarlen } from '../src/reference.js';
import { kvCases } from './conformance/kvcache-cases.js';
import { type Case, callOptions, freshSeed, scenario } from './kvcache-helpers.js';

const seed = freshSeed();

function check(c: Case, salt: number) {
  const s = scenario({ seed: seed + salt, seqs: c.seqs, blockSize: c.blockSize, ...c.shape });
  const options = callOptions(c, s);
  const before = { k: s.cache.k.data.slice(), v: s.cache.v.data.slice() };
  const got = referenceAttentionWithKvCache(s.q, s.cache, options);
  const want = referenceAttentionVarlen(s.q, s.kAll, s.vAll, {
    ...c.options,
    returnLse: true,
    cuSeqlensQ: s.cuSeqlensQ,
    cuSeqlensK: s.cuSeqlensK,
  });
  // The same float64 arithmetic on the same keys in the same order: equal, not merely close.
  expect(got.out64).toEqual(want.out64);
  expect(got.lse64).toEqual(want.lse64);
  expect(got.out.shape).toEqual([s.q.shape[0], s.numHeads, s.headDimV]);
  expect(got.lse?.shape).toEqual([s.numHeads, s.q.shape[0]]);
  expect(got.out.data).toEqual(want.out.data);
  // The write: every held row is the sequence's key, every other row untouched; the inputs are not changed.
  expect(got.cache.k.data).toEqual(s.after.k.data);
  expect(got.cache.v.data).toEqual(s.after.v.data);
  expect(got.cache.k.shape).toEqual(s.cache.k.shape);
  expect(s.cache.k.data).toEqual(before.k);
  expect(s.cache.v.data).toEqual(before.v);
  for (const x of got.out64) expect(Number.isNaN(x)).toBe(false);
  return { s, got };
}

// The conformance cases every engine runs (test/conformance/kvcache-cases.ts), and one of the reference's own.
const cases: [string, Case][] = [
  ...kvCases.filter(([name]) => !name.startsWith('workload C shape')), // (its 16M-element arrays: minutes of toEqual)
  [
    'a window wider than any sequence is unbounded',
    {
      seqs: [{ c: 9, n: 2, lq: 2 }],
      blockSize: 4,
      options: { window: [1_000_000, 1_000_000] },
    },
  ],
];

describe(`referenceAttentionWithKvCache equals attentionVarlen on the concatenated keys (seed ${seed}; replay with FLASHATTN_SEED=${seed})`, () => {
  it.each(cases)('%s', (_name, c) => {
    check(
      c,
      cases.findIndex(([, x]) => x === c),
    );
  });

  it('rows that see no key: out 0, lse -Infinity', () => {
    const at = cases.findIndex(([name]) => name.startsWith('more queries than keys'));
    const { s, got } = check(cases[at]![1], at);
    // Sequence 0: Lq = 6 over Lk = 3, causal: rows 0..2 see nothing.
    for (let h = 0; h < s.numHeads; h++)
      for (let i = 0; i < 3; i++) expect(got.lse64[h * s.q.shape[0]! + i]).toBe(-Infinity);
  });

  it('sequences share the prefix blocks they read; each writes its own next block', () => {
    const s = scenario({ seed, seqs: [{ c: 8, n: 0, lq: 0 }], blockSize: 4, spare: 4 });
    // Both sequences read the first sequence's two full blocks and write one row in a block of their own.
    const free = [...Array(s.numBlocks).keys()].filter((b) => !Array.from(s.blockTable).includes(b));
    const table = Int32Array.of(
      s.blockTable[0]!,
      s.blockTable[1]!,
      free[0]!,
      s.blockTable[0]!,
      s.blockTable[1]!,
      free[1]!,
    );
    const q = scenario({ seed: seed + 1, seqs: [{ c: 0, n: 2, lq: 2 }], blockSize: 4 });
    const r = referenceAttentionWithKvCache(q.q, s.cache, {
      cuSeqlensQ: Int32Array.of(0, 1, 2),
      cacheSeqlens: Int32Array.of(8, 8),
      blockTable: table,
      kNew: q.kNew,
      vNew: q.vNew,
      causal: true,
    });
    const rowK = s.numKvHeads * s.headDim;
    const prefix = s.kAll.data.subarray(0, 8 * rowK) as Float32Array;
    const kAll = new Float32Array(18 * rowK);
    kAll.set(prefix, 0);
    kAll.set(q.kNew.data.subarray(0, rowK), 8 * rowK);
    kAll.set(prefix, 9 * rowK);
    kAll.set(q.kNew.data.subarray(rowK), 17 * rowK);
    const vAll = new Float32Array(18 * rowK);
    vAll.set(s.vAll.data.subarray(0, 8 * rowK), 0);
    vAll.set(q.vNew.data.subarray(0, rowK), 8 * rowK);
    vAll.set(s.vAll.data.subarray(0, 8 * rowK), 9 * rowK);
    vAll.set(q.vNew.data.subarray(rowK), 17 * rowK);
    const want = referenceAttentionVarlen(
      q.q,
      { data: kAll, shape: [18, s.numKvHeads, s.headDim] },
      { data: vAll, shape: [18, s.numKvHeads, s.headDim] },
      { cuSeqlensQ: Int32Array.of(0, 1, 2), cuSeqlensK: Int32Array.of(0, 9, 18), causal: true },
    );
    expect(r.out64).toEqual(want.out64);
  });

  it('every write happens before any read: a sequence reading a block another one writes sees the new row', () => {
    const s = scenario({ seed, seqs: [{ c: 3, n: 1, lq: 0 }], blockSize: 4 });
    const q1 = scenario({ seed: seed + 2, seqs: [{ c: 0, n: 0, lq: 1 }], blockSize: 4 }).q;
    // Sequence 1 holds sequence 0's block as its 4 rows, and reads position 3, which sequence 0 writes.
    const blk = s.blockTable[0]!;
    const r = referenceAttentionWithKvCache(q1, s.cache, {
      cuSeqlensQ: Int32Array.of(0, 0, 1),
      cacheSeqlens: Int32Array.of(3, 4),
      blockTable: Int32Array.of(blk, blk),
      kNew: s.kNew,
      vNew: s.vNew,
      cuSeqlensNew: Int32Array.of(0, 1, 1),
    });
    const want = referenceAttentionVarlen(q1, s.kAll, s.vAll, {
      cuSeqlensQ: Int32Array.of(0, 1),
      cuSeqlensK: Int32Array.of(0, 4),
    });
    expect(r.out64).toEqual(want.out64);
  });
});
