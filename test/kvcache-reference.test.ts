// referenceAttentionWithKvCache is docs/semantics.md's KV cache section written out: write the new rows, then
// attentionVarlen over each sequence's keys 0 .. c + n - 1. Checked against referenceAttentionVarlen on the
// same keys laid end to end, on seeded scenarios (test/kvcache-helpers.ts), and the cache's contents after.
import { describe, expect, it } from 'vitest';
import { referenceAttentionWithKvCache } from '../src/kvcache/reference.js';
import { referenceAttentionVarlen } from '../src/reference.js';
import type { DType } from '../src/types.js';
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

const cases: [string, Case][] = [
  [
    'decode: one new row and one query per sequence',
    {
      seqs: [
        { c: 5, n: 1, lq: 1 },
        { c: 17, n: 1, lq: 1 },
        { c: 0, n: 1, lq: 1 },
      ],
      blockSize: 4,
      options: { causal: true },
    },
  ],
  [
    'block size 1',
    {
      seqs: [
        { c: 6, n: 2, lq: 2 },
        { c: 3, n: 1, lq: 1 },
      ],
      blockSize: 1,
      options: { causal: true },
    },
  ],
  [
    'block size 7 (not a power of two), rows crossing blocks',
    {
      seqs: [
        { c: 12, n: 5, lq: 5 },
        { c: 6, n: 9, lq: 9 },
      ],
      blockSize: 7,
      options: { causal: true },
    },
  ],
  ['prefill from empty', { seqs: [{ c: 0, n: 20, lq: 20 }], blockSize: 8, options: { causal: true } }],
  [
    'chunked prefill (a chunk after earlier chunks)',
    {
      seqs: [
        { c: 13, n: 9, lq: 9 },
        { c: 16, n: 16, lq: 16 },
      ],
      blockSize: 8,
      options: { causal: true },
    },
  ],
  [
    'speculative rows: a few draft rows verified at once',
    {
      seqs: [
        { c: 30, n: 4, lq: 4 },
        { c: 9, n: 3, lq: 3 },
      ],
      blockSize: 16,
      options: { causal: true },
      explicitNew: true,
    },
  ],
  [
    'fewer queries than new keys (cuSeqlensNew apart from cuSeqlensQ)',
    {
      seqs: [
        { c: 4, n: 6, lq: 2 },
        { c: 0, n: 5, lq: 1 },
      ],
      blockSize: 4,
      options: { causal: true },
    },
  ],
  [
    'more queries than keys: rows that see no key are 0 with lse -Infinity',
    {
      seqs: [
        { c: 2, n: 1, lq: 6 },
        { c: 0, n: 0, lq: 3 },
      ],
      blockSize: 4,
      options: { causal: true },
    },
  ],
  [
    'empty sequences (no rows, no queries), and a sequence written but not queried',
    {
      seqs: [
        { c: 0, n: 0, lq: 0 },
        { c: 7, n: 2, lq: 2 },
        { c: 3, n: 4, lq: 0 },
        { c: 0, n: 0, lq: 0 },
      ],
      blockSize: 4,
    },
  ],
  [
    'read-only call (no kNew/vNew)',
    {
      seqs: [
        { c: 11, n: 0, lq: 3 },
        { c: 1, n: 0, lq: 1 },
      ],
      blockSize: 5,
      readOnly: true,
      options: { causal: true },
    },
  ],
  [
    'sliding window, bottom-right against Lk = c + n',
    {
      seqs: [
        { c: 20, n: 3, lq: 3 },
        { c: 2, n: 4, lq: 4 },
      ],
      blockSize: 4,
      options: { causal: true, window: [5, 0] },
    },
  ],
  [
    'two-sided window, softcap and ALiBi',
    {
      seqs: [{ c: 9, n: 6, lq: 4 }],
      blockSize: 3,
      options: { window: [3, 2], softcap: 2.5, alibiSlopes: [0.5, 0.25, 0.125, 0.0625], softmaxScale: 0.4 },
    },
  ],
  [
    'a window wider than any sequence is unbounded',
    {
      seqs: [{ c: 9, n: 2, lq: 2 }],
      blockSize: 4,
      options: { window: [1_000_000, 1_000_000] },
    },
  ],
  [
    'GQA: 8 query heads over 2 cache heads',
    {
      seqs: [
        { c: 10, n: 2, lq: 2 },
        { c: 3, n: 1, lq: 1 },
      ],
      blockSize: 4,
      options: { causal: true },
      shape: { numHeads: 8, numKvHeads: 2 },
    },
  ],
  [
    'MQA with headDimV != headDim',
    {
      seqs: [{ c: 6, n: 3, lq: 3 }],
      blockSize: 4,
      options: { causal: true },
      shape: { numHeads: 3, numKvHeads: 1, headDim: 16, headDimV: 5 },
    },
  ],
  ...(['float16', 'bfloat16'] as DType[]).map((dtype): [string, Case] => [
    `${dtype} cache`,
    { seqs: [{ c: 9, n: 2, lq: 2 }], blockSize: 4, options: { causal: true }, shape: { dtype } },
  ]),
  [
    'table padded with -1 past the last block, spare blocks in the pool',
    {
      seqs: [
        { c: 3, n: 1, lq: 1 },
        { c: 8, n: 1, lq: 1 },
      ],
      blockSize: 4,
      shape: { pad: 3, spare: 5 },
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
    const { s, got } = check(cases[7]![1], 7);
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
