/** The CPU benchmark's workloads (float32), their seeded inputs, FLOP and byte counts. */
import { randn, rng } from '../random.js';
import type { Problem } from '../../problem.js';
import { problemFlops } from '../../problem.js';
import type { Tensor } from '../../types.js';
import { validateVarlen } from '../../validate.js';

export interface Workload {
  id: string;
  title: string;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  headDimV: number;
  /** Per-sequence lengths; one entry = a single (fixed-length, batch 1) call. */
  seqlensQ: readonly number[];
  seqlensK: readonly number[];
  causal: boolean;
  /** Also report the GB/s of K and V read (decode). */
  reportBandwidth?: boolean;
  /** Also measure flashattn with K and V uploaded once (resident in the engine) and q passed per call. */
  residentKV?: boolean;
  /** Also measure flashattn with the first Lk - 1 keys in a KV cache and the last appended by each call (./kvcache.ts). */
  kvCache?: boolean;
}

export const WORKLOADS: readonly Workload[] = [
  {
    id: 'A',
    title: 'prefill, causal, 8 heads, 1024 x 1024, d 64',
    numHeads: 8,
    numKvHeads: 8,
    headDim: 64,
    headDimV: 64,
    seqlensQ: [1024],
    seqlensK: [1024],
    causal: true,
  },
  {
    id: 'B',
    title: 'bottom-right causal, 8 heads, 512 q x 2048 k, d 64',
    numHeads: 8,
    numKvHeads: 8,
    headDim: 64,
    headDimV: 64,
    seqlensQ: [512],
    seqlensK: [2048],
    causal: true,
  },
  {
    id: 'C',
    title: 'decode, 32 q heads / 8 kv heads, 1 x 4096, d 128',
    numHeads: 32,
    numKvHeads: 8,
    headDim: 128,
    headDimV: 128,
    seqlensQ: [1],
    seqlensK: [4096],
    causal: true,
    reportBandwidth: true,
    residentKV: true,
    kvCache: true,
  },
  {
    id: 'D',
    title: 'non-causal, 12 heads, 512 x 512, d 64',
    numHeads: 12,
    numKvHeads: 12,
    headDim: 64,
    headDimV: 64,
    seqlensQ: [512],
    seqlensK: [512],
    causal: false,
  },
  {
    id: 'E',
    title: 'packed batch, causal, 8 heads, d 64, lengths [37, 512, 129, 1024, 5, 300]',
    numHeads: 8,
    numKvHeads: 8,
    headDim: 64,
    headDimV: 64,
    seqlensQ: [37, 512, 129, 1024, 5, 300],
    seqlensK: [37, 512, 129, 1024, 5, 300],
    causal: true,
  },
  {
    id: 'F',
    title: 'decode batch 8, 32 q heads / 8 kv heads, 8 x (1 x 4096), d 128',
    numHeads: 32,
    numKvHeads: 8,
    headDim: 128,
    headDimV: 128,
    seqlensQ: [1, 1, 1, 1, 1, 1, 1, 1],
    seqlensK: [4096, 4096, 4096, 4096, 4096, 4096, 4096, 4096],
    causal: true,
    reportBandwidth: true,
    residentKV: true,
    kvCache: true,
  },
];

export interface WorkloadData {
  w: Workload;
  /** Packed `[totalQ, H, D]`, `[totalK, Hk, D]`, `[totalK, Hk, Dv]`. */
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  cuSeqlensQ: Int32Array;
  cuSeqlensK: Int32Array;
  totalQ: number;
  totalK: number;
  /** The validated packed problem (for the reference and the FLOP count). */
  problem: Problem<Tensor>;
  flops: number;
  /** Bytes of K and V read once (float32). */
  kvBytes: number;
}

function prefix(lens: readonly number[]): Int32Array {
  const cu = new Int32Array(lens.length + 1);
  for (let i = 0; i < lens.length; i++) cu[i + 1] = cu[i]! + lens[i]!;
  return cu;
}

/** Seeded unit-scale normal inputs: the same seed gives the same data everywhere. */
export function makeWorkloadData(w: Workload, seed = 1234): WorkloadData {
  const cuSeqlensQ = prefix(w.seqlensQ),
    cuSeqlensK = prefix(w.seqlensK);
  const totalQ = cuSeqlensQ[w.seqlensQ.length]!,
    totalK = cuSeqlensK[w.seqlensK.length]!;
  const next = rng(seed);
  const q = randn(next, totalQ * w.numHeads * w.headDim);
  const k = randn(next, totalK * w.numKvHeads * w.headDim);
  const v = randn(next, totalK * w.numKvHeads * w.headDimV);
  const t = (data: Float32Array, shape: number[]): Tensor => ({ data, shape, dtype: 'float32' });
  const problem = validateVarlen(
    t(q, [totalQ, w.numHeads, w.headDim]),
    t(k, [totalK, w.numKvHeads, w.headDim]),
    t(v, [totalK, w.numKvHeads, w.headDimV]),
    { cuSeqlensQ, cuSeqlensK, causal: w.causal },
  );
  return {
    w,
    q,
    k,
    v,
    cuSeqlensQ,
    cuSeqlensK,
    totalQ,
    totalK,
    problem,
    flops: problemFlops(problem),
    kvBytes: totalK * w.numKvHeads * (w.headDim + w.headDimV) * 4,
  };
}

/** Rows [q0, q1) and [k0, k1) of sequence b. */
export function seqRange(d: WorkloadData, b: number): { q0: number; q1: number; k0: number; k1: number } {
  return { q0: d.cuSeqlensQ[b]!, q1: d.cuSeqlensQ[b + 1]!, k0: d.cuSeqlensK[b]!, k1: d.cuSeqlensK[b + 1]! };
}
