/**
 * The KV cache conformance cases: each is one attentionWithKvCache on a cache loaded with a seeded scenario
 * (test/kvcache-helpers.ts: scattered blocks, noise in the rows no sequence holds), run by runKvCase
 * (kvcache.ts) on the wasm engine in Node (test/wasm-kvcache.test.ts, 1 and 2 threads) and in Chromium
 * (test/browser-kvcache.test.ts, one worker and a cross-origin isolated page).
 */
import type { DType } from '../../src/types.js';
import type { Case as KvCase } from '../kvcache-helpers.js';

export type { KvCase };

const slopes = (h: number) => Array.from({ length: h }, (_, i) => 2 ** -(i + 1));

export const kvCases: [string, KvCase][] = [
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
  ...(['float16', 'bfloat16'] as DType[]).flatMap((dtype): [string, KvCase][] => [
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
