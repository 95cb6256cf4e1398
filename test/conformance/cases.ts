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
  if (!c.returnLse) parts.push('no-lse');
  if (c.qScale) parts.push(`qScale=${c.qScale}`);
  if (c.badIn) parts.push(`${c.bad ?? 'nan'}-in-${c.badIn}`);
  return parts.join(' ');
}

const mk = (o: Partial<Case>): Case => {
  const c = { ...base, ...o };
  if (o.numHeads !== undefined && o.numKvHeads === undefined) c.numKvHeads = o.numHeads;
  if (o.headDim !== undefined && o.headDimV === undefined) c.headDimV = o.headDim;
  return c;
};

const HEAD_DIMS = [1, 13, 40, 59, 64, 80, 96, 111, 128, 160, 192, 224, 256];

export const cases: Case[] = [
  // The classic bottom-right picture, and its mirror where the first rows see nothing.
  mk({ seqlensQ: [10], seqlensK: [20], causal: true }),
  mk({ seqlensQ: [20], seqlensK: [10], causal: true }),
  mk({ seqlensQ: [10], seqlensK: [20] }),
  mk({ seqlensQ: [130], seqlensK: [70], causal: true, numHeads: 3 }),
  // Ragged packed batches with empty sequences on either side.
  mk({ seqlensQ: [5, 0, 7, 3, 0], seqlensK: [6, 4, 0, 9, 0], causal: true }),
  mk({ seqlensQ: [5, 0, 7, 3], seqlensK: [6, 4, 0, 9] }),
  mk({ seqlensQ: [], seqlensK: [] }),
  mk({ seqlensQ: [1, 63, 65, 130, 2], seqlensK: [129, 64, 1, 130, 300], causal: true, numHeads: 4, numKvHeads: 2 }),
  mk({
    seqlensQ: [1, 63, 65, 130, 2],
    seqlensK: [129, 64, 1, 130, 300],
    numHeads: 4,
    numKvHeads: 2,
    dtype: 'bfloat16',
  }),
  // Lq = 1 (decode) and Lk = 1.
  mk({ seqlensQ: [1, 1, 1], seqlensK: [200, 1, 77], numHeads: 8, numKvHeads: 2, causal: true }),
  mk({ seqlensQ: [1], seqlensK: [517], numHeads: 8, numKvHeads: 1, headDim: 128 }),
  mk({ seqlensQ: [40], seqlensK: [1] }),
  mk({ seqlensQ: [40], seqlensK: [1], causal: true }),
  // Windows: left only, right only, both, [0, 0], with causal, and one wider than the sequence.
  mk({ seqlensQ: [150], seqlensK: [150], window: [17, -1] }),
  mk({ seqlensQ: [90], seqlensK: [150], window: [-1, 5] }),
  mk({ seqlensQ: [150], seqlensK: [90], window: [20, 3] }),
  mk({ seqlensQ: [70], seqlensK: [70], window: [0, 0] }),
  mk({ seqlensQ: [100], seqlensK: [160], window: [33, 0], causal: true }),
  mk({ seqlensQ: [33, 80], seqlensK: [60, 50], window: [1000, 1000] }),
  // Grouped heads.
  mk({ seqlensQ: [45, 70], seqlensK: [80, 70], numHeads: 8, numKvHeads: 2, causal: true }),
  mk({ seqlensQ: [45, 70], seqlensK: [80, 70], numHeads: 6, numKvHeads: 1 }),
  // Head dims, odd ones included, and headDimV != headDim.
  ...HEAD_DIMS.map((d) => mk({ seqlensQ: [29, 66], seqlensK: [71, 66], headDim: d, causal: d % 2 === 0 })),
  mk({ seqlensQ: [48, 17], seqlensK: [64, 90], headDim: 192, headDimV: 128, causal: true }),
  mk({ seqlensQ: [48], seqlensK: [64], headDim: 32, headDimV: 80 }),
  // Score transforms.
  mk({ seqlensQ: [64, 30], seqlensK: [96, 30], softcap: 5, qScale: 4 }),
  mk({ seqlensQ: [64, 30], seqlensK: [96, 30], alibi: true, causal: true, numHeads: 4 }),
  mk({ seqlensQ: [64, 30], seqlensK: [96, 30], alibi: true, window: [10, 10], numHeads: 4, softcap: 30 }),
  mk({ seqlensQ: [50], seqlensK: [75], softmaxScale: 0.5 }),
  mk({ seqlensQ: [50], seqlensK: [75], softmaxScale: -0.07, causal: true }),
  // Scores far beyond exp's range: only the running maximum keeps them finite.
  mk({ seqlensQ: [80, 33], seqlensK: [120, 33], qScale: 300 }),
  mk({ seqlensQ: [80, 33], seqlensK: [120, 33], qScale: 300, causal: true, dtype: 'float16' }),
  // Half precision inputs.
  mk({ seqlensQ: [65, 9], seqlensK: [130, 9], dtype: 'float16', causal: true, numHeads: 4, numKvHeads: 2 }),
  mk({ seqlensQ: [65, 9], seqlensK: [130, 9], dtype: 'bfloat16', headDim: 128 }),
  mk({ seqlensQ: [65], seqlensK: [130], dtype: 'bfloat16', headDim: 80, window: [20, 8], alibi: true }),
  // Fixed-length form, and without LSE.
  mk({ seqlensQ: [31, 31, 31], seqlensK: [47, 47, 47], fixed: true, causal: true, numHeads: 4, numKvHeads: 2 }),
  mk({ seqlensQ: [16, 16], seqlensK: [16, 16], fixed: true, dtype: 'float16', headDim: 32 }),
  mk({ seqlensQ: [70], seqlensK: [70], causal: true, returnLse: false }),
  // NaN and infinities stay inside the rows that see them (a hidden key's 0 weight times Inf is NaN).
  mk({ seqlensQ: [20, 30], seqlensK: [40, 30], badIn: 'q', causal: true }),
  mk({ seqlensQ: [20, 30], seqlensK: [40, 30], badIn: 'k', causal: true }),
  mk({ seqlensQ: [20, 30], seqlensK: [40, 30], badIn: 'v', causal: true }),
  mk({ seqlensQ: [20, 30], seqlensK: [40, 30], badIn: 'v', bad: 'inf', causal: true }),
  mk({ seqlensQ: [20, 30], seqlensK: [40, 30], badIn: 'v', bad: '-inf', window: [3, 0] }),
  mk({ seqlensQ: [20, 30], seqlensK: [40, 30], badIn: 'k', bad: 'inf', causal: true }),
  mk({ seqlensQ: [20, 30], seqlensK: [40, 30], badIn: 'v', bad: 'inf', causal: true, dtype: 'float16' }),
  mk({
    seqlensQ: [20, 30],
    seqlensK: [40, 30],
    badIn: 'v',
    bad: '-inf',
    causal: true,
    dtype: 'bfloat16',
    headDim: 128,
  }),
];

/**
 * Larger cases for engines fast enough to run them often (the GPU check and the cuda tests): many
 * key tiles, several query blocks, grouped heads, every head-dim class, split key ranges.
 */
export const largeCases: Case[] = [
  mk({
    seqlensQ: [1, 1, 1, 1],
    seqlensK: [4100, 700, 1, 2049],
    numHeads: 32,
    numKvHeads: 8,
    headDim: 128,
    dtype: 'bfloat16',
    causal: true,
  }),
  mk({
    seqlensQ: [300, 0, 517, 64],
    seqlensK: [300, 77, 900, 64],
    numHeads: 4,
    numKvHeads: 2,
    headDim: 128,
    dtype: 'float16',
    causal: true,
  }),
  mk({ seqlensQ: [700], seqlensK: [650], numHeads: 2, headDim: 64, dtype: 'bfloat16', window: [100, 40] }),
  mk({
    seqlensQ: [260, 3],
    seqlensK: [300, 1000],
    numHeads: 2,
    headDim: 256,
    dtype: 'float16',
    causal: true,
    alibi: true,
  }),
  mk({
    seqlensQ: [200],
    seqlensK: [1500],
    numHeads: 6,
    numKvHeads: 3,
    headDim: 96,
    headDimV: 72,
    softcap: 15,
    qScale: 3,
  }),
  mk({
    seqlensQ: [5, 600],
    seqlensK: [2000, 600],
    numHeads: 4,
    numKvHeads: 1,
    headDim: 200,
    dtype: 'bfloat16',
    causal: true,
    badIn: 'k',
  }),
  mk({
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
  mk({
    seqlensQ: [1000, 24],
    seqlensK: [1000, 3000],
    numHeads: 2,
    numKvHeads: 1,
    headDim: 128,
    dtype: 'float16',
    causal: true,
    window: [300, 0],
  }),
];
