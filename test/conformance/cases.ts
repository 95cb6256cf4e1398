/**
 * The conformance suite as data. Each case's id names every parameter that differs from the
 * defaults, so a failure line says exactly what was run. Every engine runs every case.
 */
import type { DType } from '../../src/types.js';

export interface Case {
  /** Query and key lengths of each sequence of the packed batch. */
  seqlensQ: number[];
  seqlensK: number[];
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  headDimV: number;
  dtype: DType;
  /** Run through `attention()` (fixed-length form); all lengths must then be equal. */
  fixed?: boolean;
  causal?: boolean;
  window?: [number, number];
  softmaxScale?: number;
  softcap?: number;
  alibi?: boolean;
  /** Seeded sink logits per head (learned attention sinks), around the scores' scale. */
  sinks?: boolean;
  returnLse: boolean;
  /** Standard deviation of q (k and v are unit scale); large values make exp overflow without the running max. */
  qScale?: number;
  /**
   * Put a non-finite value (`bad`, default NaN) into this input at the last row of sequence 0 (head 0,
   * element 0): with causal, only the last query row sees that key; no other row may change.
   */
  badIn?: 'q' | 'k' | 'v';
  bad?: 'nan' | 'inf' | '-inf';
}

const base: Case = {
  seqlensQ: [37],
  seqlensK: [53],
  numHeads: 2,
  numKvHeads: 2,
  headDim: 64,
  headDimV: 64,
  dtype: 'float32',
  returnLse: true,
};

export function caseId(c: Case): string {
  const parts: string[] = [];
  const same = (a: number[], b: number[]) => a.length === b.length && a.every((x, i) => x === b[i]);
  parts.push(
    same(c.seqlensQ, c.seqlensK)
      ? `L=${c.seqlensQ.join(',')}`
      : `Lq=${c.seqlensQ.join(',')} Lk=${c.seqlensK.join(',')}`,
  );
  parts.push(c.numKvHeads === c.numHeads ? `h=${c.numHeads}` : `h=${c.numHeads}/${c.numKvHeads}`);
  parts.push(c.headDimV === c.headDim ? `d=${c.headDim}` : `d=${c.headDim}/${c.headDimV}`);
  if (c.dtype !== 'float32') parts.push(c.dtype);
  if (c.fixed) parts.push('fixed');
  if (c.causal) parts.push('causal');
  if (c.window) parts.push(`window=${c.window.join(',')}`);
  if (c.softmaxScale !== undefined) parts.push(`scale=${c.softmaxScale}`);
  if (c.softcap) parts.push(`softcap=${c.softcap}`);
  if (c.alibi) parts.push('alibi');
  if (c.sinks) parts.push('sinks');
  if (!c.returnLse) parts.push('no-lse');
  if (c.qScale) parts.push(`qScale=${c.qScale}`);
  if (c.badIn) parts.push(`${c.bad ?? 'nan'}-in-${c.badIn}`);
  return parts.join(' ');
}

export const makeCase = (o: Partial<Case>): Case => {
  const c = { ...base, ...o };
  if (o.numHeads !== undefined && o.numKvHeads === undefined) c.numKvHeads = o.numHeads;
  if (o.headDim !== undefined && o.headDimV === undefined) c.headDimV = o.headDim;
  return c;
};

const HEAD_DIMS = [1, 13, 40, 59, 64, 80, 96, 111, 128, 160, 192, 224, 256];

export const cases: Case[] = [
  // The classic bottom-right picture, and its mirror where the first rows see nothing.
  makeCase({ seqlensQ: [10], seqlensK: [20], causal: true }),
  makeCase({ seqlensQ: [20], seqlensK: [10], causal: true }),
  makeCase({ seqlensQ: [10], seqlensK: [20] }),
  makeCase({ seqlensQ: [130], seqlensK: [70], causal: true, numHeads: 3 }),
  // Ragged packed batches with empty sequences on either side.
  makeCase({ seqlensQ: [5, 0, 7, 3, 0], seqlensK: [6, 4, 0, 9, 0], causal: true }),
  makeCase({ seqlensQ: [5, 0, 7, 3], seqlensK: [6, 4, 0, 9] }),
  makeCase({ seqlensQ: [], seqlensK: [] }),
  makeCase({
    seqlensQ: [1, 63, 65, 130, 2],
    seqlensK: [129, 64, 1, 130, 300],
    causal: true,
    numHeads: 4,
    numKvHeads: 2,
  }),
  makeCase({
    seqlensQ: [1, 63, 65, 130, 2],
    seqlensK: [129, 64, 1, 130, 300],
    numHeads: 4,
    numKvHeads: 2,
    dtype: 'bfloat16',
  }),
  // Lq = 1 (decode) and Lk = 1.
  makeCase({ seqlensQ: [1, 1, 1], seqlensK: [200, 1, 77], numHeads: 8, numKvHeads: 2, causal: true }),
  makeCase({ seqlensQ: [1], seqlensK: [517], numHeads: 8, numKvHeads: 1, headDim: 128 }),
  makeCase({ seqlensQ: [40], seqlensK: [1] }),
  makeCase({ seqlensQ: [40], seqlensK: [1], causal: true }),
  // Windows: left only, right only, both, [0, 0], with causal, and one wider than the sequence.
  makeCase({ seqlensQ: [150], seqlensK: [150], window: [17, -1] }),
  makeCase({ seqlensQ: [90], seqlensK: [150], window: [-1, 5] }),
  makeCase({ seqlensQ: [150], seqlensK: [90], window: [20, 3] }),
  makeCase({ seqlensQ: [70], seqlensK: [70], window: [0, 0] }),
  makeCase({ seqlensQ: [100], seqlensK: [160], window: [33, 0], causal: true }),
  makeCase({ seqlensQ: [33, 80], seqlensK: [60, 50], window: [1000, 1000] }),
  // Grouped heads.
  makeCase({ seqlensQ: [45, 70], seqlensK: [80, 70], numHeads: 8, numKvHeads: 2, causal: true }),
  makeCase({ seqlensQ: [45, 70], seqlensK: [80, 70], numHeads: 6, numKvHeads: 1 }),
  // Head dims, odd ones included, and headDimV != headDim.
  ...HEAD_DIMS.map((d) => makeCase({ seqlensQ: [29, 66], seqlensK: [71, 66], headDim: d, causal: d % 2 === 0 })),
  makeCase({ seqlensQ: [48, 17], seqlensK: [64, 90], headDim: 192, headDimV: 128, causal: true }),
  makeCase({ seqlensQ: [48], seqlensK: [64], headDim: 32, headDimV: 80 }),
  // Score transforms.
  makeCase({ seqlensQ: [64, 30], seqlensK: [96, 30], softcap: 5, qScale: 4 }),
  makeCase({ seqlensQ: [64, 30], seqlensK: [96, 30], alibi: true, causal: true, numHeads: 4 }),
  makeCase({ seqlensQ: [64, 30], seqlensK: [96, 30], alibi: true, window: [10, 10], numHeads: 4, softcap: 30 }),
  makeCase({ seqlensQ: [50], seqlensK: [75], softmaxScale: 0.5 }),
  makeCase({ seqlensQ: [50], seqlensK: [75], softmaxScale: -0.07, causal: true }),
  // Scores far beyond exp's range: only the running maximum keeps them finite.
  makeCase({ seqlensQ: [80, 33], seqlensK: [120, 33], qScale: 300 }),
  makeCase({ seqlensQ: [80, 33], seqlensK: [120, 33], qScale: 300, causal: true, dtype: 'float16' }),
  // Half precision inputs.
  makeCase({ seqlensQ: [65, 9], seqlensK: [130, 9], dtype: 'float16', causal: true, numHeads: 4, numKvHeads: 2 }),
  makeCase({ seqlensQ: [65, 9], seqlensK: [130, 9], dtype: 'bfloat16', headDim: 128 }),
  makeCase({ seqlensQ: [65], seqlensK: [130], dtype: 'bfloat16', headDim: 80, window: [20, 8], alibi: true }),
  // Fixed-length form, and without LSE.
  makeCase({ seqlensQ: [31, 31, 31], seqlensK: [47, 47, 47], fixed: true, causal: true, numHeads: 4, numKvHeads: 2 }),
  makeCase({ seqlensQ: [16, 16], seqlensK: [16, 16], fixed: true, dtype: 'float16', headDim: 32 }),
  makeCase({ seqlensQ: [70], seqlensK: [70], causal: true, returnLse: false }),
  // Learned attention sinks: in the denominator only; rows that see no key get out 0 and lse = sink.
  makeCase({ seqlensQ: [37, 5], seqlensK: [53, 70], sinks: true, causal: true }),
  makeCase({ seqlensQ: [20], seqlensK: [10], sinks: true, causal: true, numHeads: 4, numKvHeads: 2 }),
  makeCase({ seqlensQ: [1, 1], seqlensK: [1500, 2600], sinks: true, numHeads: 8, numKvHeads: 2, headDim: 128 }),
  makeCase({ seqlensQ: [33], seqlensK: [33], sinks: true, dtype: 'bfloat16', window: [8, 0], softcap: 20 }),
  // NaN and infinities stay inside the rows that see them (a hidden key's 0 weight times Inf is NaN).
  makeCase({ seqlensQ: [20, 30], seqlensK: [40, 30], badIn: 'q', causal: true }),
  makeCase({ seqlensQ: [20, 30], seqlensK: [40, 30], badIn: 'k', causal: true }),
  makeCase({ seqlensQ: [20, 30], seqlensK: [40, 30], badIn: 'v', causal: true }),
  makeCase({ seqlensQ: [20, 30], seqlensK: [40, 30], badIn: 'v', bad: 'inf', causal: true }),
  makeCase({ seqlensQ: [20, 30], seqlensK: [40, 30], badIn: 'v', bad: '-inf', window: [3, 0] }),
  makeCase({ seqlensQ: [20, 30], seqlensK: [40, 30], badIn: 'k', bad: 'inf', causal: true }),
  makeCase({ seqlensQ: [20, 30], seqlensK: [40, 30], badIn: 'v', bad: 'inf', causal: true, dtype: 'float16' }),
  makeCase({
    seqlensQ: [20, 30],
    seqlensK: [40, 30],
    badIn: 'v',
    bad: '-inf',
    causal: true,
    dtype: 'bfloat16',
    headDim: 128,
  }),
  // The bad key under a sliding window, seen by rows 17-19 of sequence 0 only.
  makeCase({ seqlensQ: [20, 30], seqlensK: [40, 30], badIn: 'v', bad: 'inf', window: [5, 2] }),
  // Lq > Lk: rows 0-19 of sequence 0 see no key (zeros, lse -inf), only row 59 sees the bad key;
  // sequence 1's first key sits right after it.
  makeCase({ seqlensQ: [60, 30], seqlensK: [40, 50], badIn: 'v', causal: true }),
  // Grouped heads under a causal window: only query row 49 (all 4 heads of kv head 0) sees it.
  makeCase({ seqlensQ: [50, 20], seqlensK: [70, 20], numHeads: 8, numKvHeads: 2, badIn: 'v', window: [10, 0] }),
];

/**
 * Larger cases for engines fast enough to run them often (the GPU check and the cuda tests): many
 * key tiles, several query blocks, grouped heads, every head-dim class, split key ranges.
 */
export const largeCases: Case[] = [
  makeCase({
    seqlensQ: [1, 1, 1, 1],
    seqlensK: [4100, 700, 1, 2049],
    numHeads: 32,
    numKvHeads: 8,
    headDim: 128,
    dtype: 'bfloat16',
    causal: true,
  }),
  makeCase({
    seqlensQ: [300, 0, 517, 64],
    seqlensK: [300, 77, 900, 64],
    numHeads: 4,
    numKvHeads: 2,
    headDim: 128,
    dtype: 'float16',
    causal: true,
  }),
  makeCase({ seqlensQ: [700], seqlensK: [650], numHeads: 2, headDim: 64, dtype: 'bfloat16', window: [100, 40] }),
  makeCase({
    seqlensQ: [260, 3],
    seqlensK: [300, 1000],
    numHeads: 2,
    headDim: 256,
    dtype: 'float16',
    causal: true,
    alibi: true,
  }),
  makeCase({
    seqlensQ: [200],
    seqlensK: [1500],
    numHeads: 6,
    numKvHeads: 3,
    headDim: 96,
    headDimV: 72,
    softcap: 15,
    qScale: 3,
  }),
  // The general copy of the 128-row kernels (on sm_90 the Hopper kernel's) over many key tiles:
  // softcap with ALiBi and grouped heads, a negative scale under a window, Dv < D in one class.
  makeCase({
    seqlensQ: [700, 130],
    seqlensK: [1300, 130],
    numHeads: 8,
    numKvHeads: 2,
    headDim: 128,
    dtype: 'bfloat16',
    causal: true,
    softcap: 30,
    alibi: true,
    qScale: 3,
  }),
  makeCase({
    seqlensQ: [600],
    seqlensK: [900],
    numHeads: 4,
    headDim: 64,
    dtype: 'float16',
    window: [200, 50],
    softmaxScale: -0.125,
  }),
  makeCase({
    seqlensQ: [400, 200],
    seqlensK: [800, 200],
    numHeads: 4,
    headDim: 128,
    headDimV: 64,
    causal: true,
    softcap: 20,
    alibi: true,
  }),
  makeCase({
    seqlensQ: [5, 600],
    seqlensK: [2000, 600],
    numHeads: 4,
    numKvHeads: 1,
    headDim: 200,
    dtype: 'bfloat16',
    causal: true,
    badIn: 'k',
  }),
  makeCase({
    seqlensQ: [5, 600],
    seqlensK: [2000, 600],
    numHeads: 4,
    numKvHeads: 1,
    headDim: 128,
    dtype: 'bfloat16',
    causal: true,
    badIn: 'v',
    bad: 'inf',
  }),
  makeCase({
    seqlensQ: [1000, 24],
    seqlensK: [1000, 3000],
    numHeads: 2,
    numKvHeads: 1,
    headDim: 128,
    dtype: 'float16',
    causal: true,
    window: [300, 0],
  }),
  // Many query blocks and key tiles around the bad key (the last of sequence 0, seen by its last
  // query row only), grouped heads, Lq < Lk, and a short sequence 1 right after it.
  makeCase({
    seqlensQ: [300, 40],
    seqlensK: [1000, 40],
    numHeads: 8,
    numKvHeads: 2,
    headDim: 128,
    dtype: 'bfloat16',
    causal: true,
    badIn: 'v',
  }),
  makeCase({
    seqlensQ: [700, 5],
    seqlensK: [650, 900],
    numHeads: 2,
    headDim: 64,
    dtype: 'float16',
    window: [100, 40],
    badIn: 'v',
    bad: '-inf',
  }),
];

/**
 * Cases that exercise what the shared suite reaches only lightly on the wasm engine: split key
 * ranges, ragged batches, halves (its own tests run them at every thread count).
 */
export const splitCases: Case[] = [
  // ragged causal packed batch, grouped heads, sequences longer than one row block
  makeCase({
    seqlensQ: [1, 63, 65, 130, 2, 300],
    seqlensK: [129, 64, 1, 130, 300, 700],
    numHeads: 4,
    numKvHeads: 2,
    causal: true,
  }),
  // decode, GQA 32/8, d 128: key ranges split into fixed chunks and combined
  makeCase({
    seqlensQ: [1, 1, 1],
    seqlensK: [3000, 1100, 5000],
    numHeads: 32,
    numKvHeads: 8,
    headDim: 128,
    headDimV: 128,
    causal: true,
  }),
  // decode items of several kv heads: 5 kv heads (not a multiple of the 8 an item holds), groups of 2 heads
  // (4-row groups padded), and 2 query rows x 2 heads (a full group); float16 and float32
  makeCase({
    seqlensQ: [1, 1, 1],
    seqlensK: [1500, 40, 2100],
    numHeads: 10,
    numKvHeads: 5,
    headDim: 72,
    headDimV: 40,
    dtype: 'float16',
    causal: true,
  }),
  makeCase({ seqlensQ: [2, 2], seqlensK: [1900, 3], numHeads: 6, numKvHeads: 3, headDim: 48, causal: true }),
  // float16 decode items read K and V raw: an Inf or NaN at the key only the last row sees (the tile is then
  // converted exactly) stays in that row
  ...(['k', 'v'] as const).map((badIn) =>
    makeCase({
      seqlensQ: [2, 1],
      seqlensK: [1500, 700],
      numHeads: 6,
      numKvHeads: 3,
      dtype: 'float16',
      causal: true,
      badIn,
      bad: badIn === 'v' ? 'inf' : 'nan',
    }),
  ),
  // decode, MHA (one row per item), window cutting the range, alibi
  makeCase({ seqlensQ: [1, 1], seqlensK: [2600, 1500], numHeads: 3, numKvHeads: 3, window: [1300, -1], alibi: true }),
  // 16 rows: split with chunk boundaries inside the rows' ranges, bottom-right causal
  makeCase({ seqlensQ: [16], seqlensK: [2100], numHeads: 2, numKvHeads: 2, headDim: 40, headDimV: 24, causal: true }),
  // few rows, many heads per item (no split), NaN confined to its rows
  makeCase({ seqlensQ: [5, 13], seqlensK: [900, 1300], numHeads: 16, numKvHeads: 2, causal: true, badIn: 'k' }),
  // halves
  makeCase({
    seqlensQ: [200, 77],
    seqlensK: [200, 77],
    numHeads: 4,
    numKvHeads: 1,
    headDim: 80,
    dtype: 'float16',
    window: [30, 5],
    alibi: true,
  }),
  makeCase({
    seqlensQ: [1, 90],
    seqlensK: [2500, 90],
    numHeads: 4,
    numKvHeads: 2,
    headDim: 96,
    dtype: 'bfloat16',
    softcap: 20,
    causal: true,
  }),
  makeCase({
    seqlensQ: [1],
    seqlensK: [3000],
    numHeads: 8,
    numKvHeads: 2,
    headDim: 128,
    headDimV: 128,
    dtype: 'float16',
    causal: true,
  }),
  // decode with head dims that are not multiples of 4 / 8 (dot product tails, padded V)
  makeCase({
    seqlensQ: [1, 1],
    seqlensK: [700, 1500],
    numHeads: 6,
    numKvHeads: 2,
    headDim: 13,
    headDimV: 7,
    dtype: 'float16',
    causal: true,
  }),
  makeCase({
    seqlensQ: [1, 2],
    seqlensK: [1300, 90],
    numHeads: 4,
    numKvHeads: 4,
    headDim: 30,
    headDimV: 12,
    softcap: 10,
    alibi: true,
  }),
];
