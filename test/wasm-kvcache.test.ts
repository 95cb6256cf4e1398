// The wasm engine's KV cache (src/wasm/kvcache.ts, the kernel's paged rows in assembly/rows.ts): each case is
// one attentionWithKvCache on a cache loaded with a seeded scenario (test/kvcache-helpers.ts: scattered
// blocks, noise in the rows no sequence holds), at 1 and 2 threads, checked against
// referenceAttentionWithKvCache (outputs poisoned first; the cache's contents after, bit for bit), against
// the same engine's attentionVarlen on the keys laid end to end (bit for bit), and the two thread counts
// against each other (bit for bit). Needs `npm run build:wasm`.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEngine } from '../src/node.js';
import type { DType, Engine } from '../src/types.js';
import { freshSeed } from './kvcache-helpers.js';
import { type Case, runCase } from './wasm-kvcache-helpers.js';
import { firstDiff } from './wasm-helpers.js';

const seed = freshSeed();

const slopes = (h: number) => Array.from({ length: h }, (_, i) => 2 ** -(i + 1));

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
    'decode over long histories: split key ranges, tiles across block boundaries (block size 16)',
    {
      seqs: [
        { c: 2500, n: 1, lq: 1 },
        { c: 1100, n: 1, lq: 1 },
        { c: 70, n: 1, lq: 1 },
      ],
      blockSize: 16,
      options: { causal: true },
      shape: { numHeads: 8, numKvHeads: 2, headDim: 32 },
    },
  ],
  [
    'block size 1',
    {
      seqs: [
        { c: 70, n: 2, lq: 2 },
        { c: 3, n: 1, lq: 1 },
      ],
      blockSize: 1,
      options: { causal: true },
    },
  ],
  [
    'block size 7 (not a power of two), blocks crossing key tiles and splits',
    {
      seqs: [
        { c: 1300, n: 5, lq: 5 },
        { c: 6, n: 9, lq: 9 },
      ],
      blockSize: 7,
      options: { causal: true },
    },
  ],
  ['prefill from empty', { seqs: [{ c: 0, n: 150, lq: 150 }], blockSize: 8, options: { causal: true } }],
  [
    'chunked prefill (a chunk after earlier chunks)',
    {
      seqs: [
        { c: 130, n: 70, lq: 70 },
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
        { c: 300, n: 4, lq: 4 },
        { c: 9, n: 3, lq: 3 },
      ],
      blockSize: 16,
      options: { causal: true },
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
        { c: 110, n: 0, lq: 3 },
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
        { c: 200, n: 3, lq: 3 },
        { c: 2, n: 4, lq: 4 },
      ],
      blockSize: 4,
      options: { causal: true, window: [37, 0] },
    },
  ],
  [
    'two-sided window, softcap and ALiBi',
    {
      seqs: [{ c: 90, n: 6, lq: 4 }],
      blockSize: 3,
      options: { window: [30, 2], softcap: 2.5, alibiSlopes: slopes(4), softmaxScale: 0.4 },
    },
  ],
  [
    'softcap and ALiBi on a decode with split key ranges',
    {
      seqs: [{ c: 1500, n: 1, lq: 1 }],
      blockSize: 16,
      options: { causal: true, softcap: 5, alibiSlopes: slopes(8).map((x) => x / 64) },
      shape: { numHeads: 8, numKvHeads: 2 },
    },
  ],
  [
    'attention sinks, on a split decode and a short prefill',
    {
      seqs: [
        { c: 1500, n: 1, lq: 1 },
        { c: 10, n: 5, lq: 5 },
      ],
      blockSize: 8,
      options: { causal: true, sinks: [0.5, -1, 2, 0] },
    },
  ],
  [
    'GQA: 8 query heads over 2 cache heads, prefill of 64+ rows (8-row score tiles)',
    {
      seqs: [
        { c: 100, n: 80, lq: 80 },
        { c: 3, n: 1, lq: 1 },
      ],
      blockSize: 4,
      options: { causal: true },
      shape: { numHeads: 8, numKvHeads: 2 },
    },
  ],
  [
    'MQA with headDimV != headDim (V staged, not copied)',
    {
      seqs: [{ c: 60, n: 30, lq: 30 }],
      blockSize: 4,
      options: { causal: true },
      shape: { numHeads: 3, numKvHeads: 1, headDim: 16, headDimV: 5 },
    },
  ],
  [
    'headDim 3 and headDimV 24: the direct path`s last dims, V rows copied whole',
    {
      seqs: [{ c: 150, n: 1, lq: 1 }],
      blockSize: 5,
      options: { causal: true },
      shape: { numHeads: 4, numKvHeads: 2, headDim: 3, headDimV: 24 },
    },
  ],
  ...(['float16', 'bfloat16'] as DType[]).flatMap((dtype): [string, Case][] => [
    [
      `${dtype} cache: decode with splits`,
      {
        seqs: [
          { c: 1200, n: 1, lq: 1 },
          { c: 40, n: 1, lq: 1 },
        ],
        blockSize: 16,
        options: { causal: true },
        shape: { dtype, numHeads: 8, numKvHeads: 2 },
      },
    ],
    [
      `${dtype} cache: chunked prefill, block size 7`,
      { seqs: [{ c: 90, n: 70, lq: 70 }], blockSize: 7, options: { causal: true }, shape: { dtype } },
    ],
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
  [
    'workload C shape: 32/8 heads, d 128, 4,095 rows in the cache + 1, block size 16',
    { seqs: [{ c: 4095, n: 1, lq: 1 }], blockSize: 16, shape: { numHeads: 32, numKvHeads: 8, headDim: 128 } },
  ],
];

describe(`wasm KV cache vs the reference, 1 and 2 threads (seed ${seed}; replay with FLASHATTN_SEED=${seed})`, () => {
  const engines = new Map<number, Engine>();
  beforeAll(async () => {
    for (const t of [1, 2]) engines.set(t, await createEngine({ backend: 'wasm', threads: t }));
  });
  afterAll(async () => {
    for (const e of engines.values()) await e.dispose();
  });

  it.each(cases)('%s', async (_name, c) => {
    const salt = seed + cases.findIndex(([, x]) => x === c);
    const one = await runCase(engines.get(1)!, c, salt);
    const two = await runCase(engines.get(2)!, c, salt);
    expect(firstDiff(one.out, two.out), 'out at 1 and 2 threads').toBe(-1);
    expect(firstDiff(one.lse, two.lse), 'lse at 1 and 2 threads').toBe(-1);
    expect(firstDiff(one.k, two.k), 'cache.k at 1 and 2 threads').toBe(-1);
  });
});
