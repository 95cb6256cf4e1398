// Seeded KV cache scenarios for the tests: each sequence's keys are made first as one logical run of rows,
// then laid into a cache (its history) and kNew/vNew (its new rows) through a shuffled block table, so a test
// can compare a call on the cache with attentionVarlen on the logical keys.
import { encode } from '../src/half.js';
import type { KvCacheCallOptions } from '../src/kvcache/types.js';
import type { AttentionOptions, DType, Tensor } from '../src/types.js';
import { randn, rng } from './conformance/random.js';

export interface SeqSpec {
  /** rows already in the cache */
  c: number;
  /** new rows */
  n: number;
  /** queries */
  lq: number;
}

export interface Scenario {
  numBlocks: number;
  blockSize: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  headDimV: number;
  dtype: DType;
  q: Tensor;
  /** the cache's contents before the call */
  cache: { k: Tensor; v: Tensor };
  kNew: Tensor;
  vNew: Tensor;
  cuSeqlensQ: Int32Array;
  cuSeqlensNew: Int32Array;
  cacheSeqlens: Int32Array;
  blockTable: Int32Array;
  maxBlocksPerSeq: number;
  /** every sequence's keys 0 .. c + n - 1 laid end to end, and their offsets */
  kAll: Tensor;
  vAll: Tensor;
  cuSeqlensK: Int32Array;
  /** the cache's contents after the write */
  after: { k: Tensor; v: Tensor };
}

export interface ScenarioOptions {
  seed: number;
  seqs: SeqSpec[];
  blockSize: number;
  numHeads?: number;
  numKvHeads?: number;
  headDim?: number;
  headDimV?: number;
  dtype?: DType;
  /** spare blocks in the pool beyond those the sequences hold */
  spare?: number;
  /** extra table entries per sequence, left -1 */
  pad?: number;
}

const tensorOf = (x: Float32Array, shape: number[], dtype: DType): Tensor => ({
  data: encode(x, dtype),
  shape,
  dtype,
});

export function scenario(o: ScenarioOptions): Scenario {
  const next = rng(o.seed);
  const bs = o.blockSize,
    hk = o.numKvHeads ?? 2,
    h = o.numHeads ?? 4,
    d = o.headDim ?? 8,
    dv = o.headDimV ?? d,
    dtype = o.dtype ?? 'float32';
  const held = o.seqs.map((s) => Math.ceil((s.c + s.n) / bs));
  const m = Math.max(0, ...held) + (o.pad ?? 1);
  const numBlocks = Math.max(1, held.reduce((a, b) => a + b, 0) + (o.spare ?? 3));
  // A shuffled pool: sequences get scattered, non-adjacent blocks.
  const ids = Array.from({ length: numBlocks }, (_, i) => i);
  for (let i = ids.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [ids[i], ids[j]] = [ids[j]!, ids[i]!];
  }
  const blockTable = new Int32Array(o.seqs.length * m).fill(-1);
  let taken = 0;
  held.forEach((nb, b) => {
    for (let j = 0; j < nb; j++) blockTable[b * m + j] = ids[taken++]!;
  });
  const rowK = hk * d,
    rowV = hk * dv;
  // The cache starts as noise: rows no sequence holds must never matter.
  const ck = randn(next, numBlocks * bs * rowK),
    cv = randn(next, numBlocks * bs * rowV);
  const ak = Float32Array.from(ck),
    av = Float32Array.from(cv);
  const totalK = o.seqs.reduce((a, s) => a + s.c + s.n, 0);
  const totalNew = o.seqs.reduce((a, s) => a + s.n, 0);
  const totalQ = o.seqs.reduce((a, s) => a + s.lq, 0);
  const kAll = randn(next, totalK * rowK),
    vAll = randn(next, totalK * rowV);
  const kNew = new Float32Array(totalNew * rowK),
    vNew = new Float32Array(totalNew * rowV);
  const cuSeqlensK = new Int32Array(o.seqs.length + 1),
    cuSeqlensNew = new Int32Array(o.seqs.length + 1),
    cuSeqlensQ = new Int32Array(o.seqs.length + 1);
  o.seqs.forEach((s, b) => {
    cuSeqlensK[b + 1] = cuSeqlensK[b]! + s.c + s.n;
    cuSeqlensNew[b + 1] = cuSeqlensNew[b]! + s.n;
    cuSeqlensQ[b + 1] = cuSeqlensQ[b]! + s.lq;
    for (let p = 0; p < s.c + s.n; p++) {
      const row = blockTable[b * m + Math.floor(p / bs)]! * bs + (p % bs);
      const src = cuSeqlensK[b]! + p;
      const kRow = kAll.subarray(src * rowK, (src + 1) * rowK),
        vRow = vAll.subarray(src * rowV, (src + 1) * rowV);
      if (p < s.c) {
        ck.set(kRow, row * rowK);
        cv.set(vRow, row * rowV);
      } else {
        const r = cuSeqlensNew[b]! + p - s.c;
        kNew.set(kRow, r * rowK);
        vNew.set(vRow, r * rowV);
      }
      ak.set(kRow, row * rowK);
      av.set(vRow, row * rowV);
    }
  });
  return {
    numBlocks,
    blockSize: bs,
    numHeads: h,
    numKvHeads: hk,
    headDim: d,
    headDimV: dv,
    dtype,
    q: tensorOf(randn(next, totalQ * h * d), [totalQ, h, d], dtype),
    cache: { k: tensorOf(ck, [numBlocks, bs, hk, d], dtype), v: tensorOf(cv, [numBlocks, bs, hk, dv], dtype) },
    kNew: tensorOf(kNew, [totalNew, hk, d], dtype),
    vNew: tensorOf(vNew, [totalNew, hk, dv], dtype),
    cuSeqlensQ,
    cuSeqlensNew,
    cacheSeqlens: Int32Array.from(o.seqs, (s) => s.c),
    blockTable,
    maxBlocksPerSeq: m,
    kAll: tensorOf(kAll, [totalK, hk, d], dtype),
    vAll: tensorOf(vAll, [totalK, hk, dv], dtype),
    cuSeqlensK,
    after: { k: tensorOf(ak, [numBlocks, bs, hk, d], dtype), v: tensorOf(av, [numBlocks, bs, hk, dv], dtype) },
  };
}

/** A fresh seed, or FLASHATTN_SEED (replays a failed run). */
export { freshSeed } from './conformance/random.js';

/** One KV cache call on a seeded scenario. */
export interface Case {
  seqs: SeqSpec[];
  blockSize: number;
  options?: AttentionOptions;
  /** a call without kNew/vNew (every n must be 0) */
  readOnly?: boolean;
  /** pass cuSeqlensNew even where it equals cuSeqlensQ */
  explicitNew?: boolean;
  shape?: Partial<ScenarioOptions>;
}

/** The call options of a case on its scenario (cuSeqlensNew only where it differs from cuSeqlensQ, or asked). */
export function callOptions(c: Case, s: Scenario): KvCacheCallOptions {
  const o: KvCacheCallOptions = {
    ...c.options,
    returnLse: true,
    cuSeqlensQ: s.cuSeqlensQ,
    cacheSeqlens: s.cacheSeqlens,
    blockTable: s.blockTable,
  };
  if (!c.readOnly) {
    o.kNew = s.kNew;
    o.vNew = s.vNew;
    if (c.explicitNew || !c.seqs.every((x) => x.n === x.lq)) o.cuSeqlensNew = s.cuSeqlensNew;
  }
  return o;
}
