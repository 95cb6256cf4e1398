/**
 * onnxruntime peers, the models: ONNX graphs built in code for each workload, one candidate per
 * operator that computes the workload's exact semantics (bottom-right causal mask, grouped heads).
 * The runners are in peers.ts.
 *
 * Semantics respected (docs/semantics.md; what each operator does with masks was checked against its outputs):
 * - ONNX `Attention` (opset 23) aligns `is_causal` top-left when Sq != Sk: is_causal only when
 *   Sq == Sk, else an explicit additive bottom-right mask.
 * - `com.microsoft.MultiHeadAttention` `unidirectional=1` is wrong for Sq < Sk: only used when
 *   Sq == Sk, else the additive mask through `attention_bias`. It has no grouped heads.
 * - `com.microsoft.GroupQueryAttention` is bottom-right but causal only (head dims multiple of 8):
 *   Sq < Sk is expressed as Sk - Sq past keys (BNSH) plus Sq new ones.
 * Neither package accepts packed variable-length input: packed workloads run one call per sequence.
 */
import { ElemType, encodeModel } from './onnx.js';
import type { Dim, GraphSpec, Initializer, NodeSpec, ValueInfo } from './onnx.js';
import type { WorkloadData } from '../../dist/cli/bench/workloads.js';
import { seqRange } from '../../dist/cli/bench/workloads.js';

export interface FeedSpec {
  type: 'float32' | 'int32' | 'int64';
  data: Float32Array | Int32Array | BigInt64Array;
  dims: number[];
}

export interface OrtPlan {
  /** Operator (and how the mask is expressed), shown in the report. */
  op: string;
  model: Uint8Array;
  outputName: string;
  /** One feed set per `session.run`; a packed workload has one per sequence. */
  feeds: Record<string, FeedSpec>[];
  /** Where each run's output goes in the packed `[totalQ, H, Dv]` result (in floats). */
  outOffsets: number[];
  totalOut: number;
}

// ---------------------------------------------------------------- graph helpers

export const f32 = (name: string, dims: readonly Dim[]): ValueInfo => ({ name, elemType: ElemType.FLOAT, dims });
const i32 = (name: string, dims: readonly Dim[]): ValueInfo => ({ name, elemType: ElemType.INT32, dims });

function int64Init(name: string, values: readonly number[]): Initializer {
  const a = BigInt64Array.from(values.map((x) => BigInt(x)));
  return { name, elemType: ElemType.INT64, dims: [values.length], raw: new Uint8Array(a.buffer) };
}

function floatScalarInit(name: string, x: number): Initializer {
  return { name, elemType: ElemType.FLOAT, dims: [], raw: new Uint8Array(new Float32Array([x]).buffer) };
}

type CausalMode = 'none' | 'mask' | 'aligned';

/**
 * How a workload's bottom-right causal mask can be expressed for every one of its sequences:
 * 'none' (not causal, or every query row sees every key: Sq = 1), 'aligned' (Sq == Sk, so top-left
 * and bottom-right agree) or 'mask' (an explicit additive mask is needed).
 */
function causalMode(d: WorkloadData): CausalMode {
  const w = d.w;
  if (!w.causal) return 'none';
  let allOne = true,
    allEqual = true;
  for (let b = 0; b < w.seqlensQ.length; b++) {
    const lq = w.seqlensQ[b]!,
      lk = w.seqlensK[b]!;
    if (lq > lk) throw new RangeError(`workload ${w.id}: rows with no visible key are not benchmarked`);
    if (lq !== 1) allOne = false;
    if (lq !== lk) allEqual = false;
  }
  return allOne ? 'none' : allEqual ? 'aligned' : 'mask';
}

/** Additive bottom-right causal mask `[Sq, Sk]`: 0 where visible, -Infinity elsewhere. */
function bottomRightMask(lq: number, lk: number): Float32Array {
  const m = new Float32Array(lq * lk);
  for (let i = 0; i < lq; i++) for (let j = i + lk - lq + 1; j < lk; j++) m[i * lk + j] = -Infinity;
  return m;
}

function slice(a: Float32Array, from: number, to: number): Float32Array {
  return a.slice(from, to);
}

interface SeqFeeds {
  b: number;
  lq: number;
  lk: number;
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
}

function perSequence(d: WorkloadData): SeqFeeds[] {
  const { numHeads: H, numKvHeads: Hk, headDim: D, headDimV: Dv } = d.w;
  return d.w.seqlensQ.map((_, b) => {
    const r = seqRange(d, b);
    return {
      b,
      lq: r.q1 - r.q0,
      lk: r.k1 - r.k0,
      q: slice(d.q, r.q0 * H * D, r.q1 * H * D),
      k: slice(d.k, r.k0 * Hk * D, r.k1 * Hk * D),
      v: slice(d.v, r.k0 * Hk * Dv, r.k1 * Hk * Dv),
    };
  });
}

function plan(
  d: WorkloadData,
  op: string,
  g: GraphSpec,
  outputName: string,
  feeds: Record<string, FeedSpec>[],
): OrtPlan {
  const { numHeads: H, headDimV: Dv } = d.w;
  const outOffsets = d.w.seqlensQ.map((_, b) => d.cuSeqlensQ[b]! * H * Dv);
  return { op, model: encodeModel(g), outputName, feeds, outOffsets, totalOut: d.totalQ * H * Dv };
}

const scaleOf = (d: WorkloadData) => 1 / Math.sqrt(d.w.headDim);
const many = (d: WorkloadData) => (d.w.seqlensQ.length > 1 ? ', per sequence' : '');

// ---------------------------------------------------------------- candidates

/** ONNX `Attention`, opset 23: 3D inputs `[1, S, heads * D]`, grouped heads native. */
function attention23(d: WorkloadData): OrtPlan | null {
  const { numHeads: H, numKvHeads: Hk, headDim: D, headDimV: Dv } = d.w;
  const mode = causalMode(d);
  const inputs = [f32('Q', [1, 'Sq', H * D]), f32('K', [1, 'Sk', Hk * D]), f32('V', [1, 'Sk', Hk * Dv])];
  if (mode === 'mask') inputs.push(f32('M', ['Sq', 'Sk']));
  const node: NodeSpec = {
    opType: 'Attention',
    inputs: inputs.map((x) => x.name),
    outputs: ['Y'],
    attrs: { q_num_heads: H, kv_num_heads: Hk, is_causal: mode === 'aligned' ? 1 : 0, scale: { float: scaleOf(d) } },
  };
  const g: GraphSpec = { nodes: [node], inputs, outputs: [f32('Y', [1, 'Sq', H * Dv])], opsets: { '': 23 } };
  const feeds = perSequence(d).map((s) => {
    const f: Record<string, FeedSpec> = {
      Q: { type: 'float32', data: s.q, dims: [1, s.lq, H * D] },
      K: { type: 'float32', data: s.k, dims: [1, s.lk, Hk * D] },
      V: { type: 'float32', data: s.v, dims: [1, s.lk, Hk * Dv] },
    };
    if (mode === 'mask') f.M = { type: 'float32', data: bottomRightMask(s.lq, s.lk), dims: [s.lq, s.lk] };
    return f;
  });
  const how = mode === 'aligned' ? ', is_causal (Sq = Sk)' : mode === 'mask' ? ', additive bottom-right mask' : '';
  return plan(d, `Attention-23${how}${many(d)}`, g, 'Y', feeds);
}

/** `com.microsoft.MultiHeadAttention`: same head count for q and k/v only. */
function multiHeadAttention(d: WorkloadData): OrtPlan | null {
  const { numHeads: H, numKvHeads: Hk, headDim: D, headDimV: Dv } = d.w;
  if (H !== Hk) return null;
  const mode = causalMode(d);
  const inputs = [f32('Q', [1, 'Sq', H * D]), f32('K', [1, 'Sk', H * D]), f32('V', [1, 'Sk', H * Dv])];
  if (mode === 'mask') inputs.push(f32('M', [1, 1, 'Sq', 'Sk']));
  const node: NodeSpec = {
    opType: 'MultiHeadAttention',
    domain: 'com.microsoft',
    inputs: mode === 'mask' ? ['Q', 'K', 'V', '', '', 'M'] : ['Q', 'K', 'V'],
    outputs: ['Y'],
    attrs: { num_heads: H, unidirectional: mode === 'aligned' ? 1 : 0, scale: { float: scaleOf(d) } },
  };
  const g: GraphSpec = {
    nodes: [node],
    inputs,
    outputs: [f32('Y', [1, 'Sq', H * Dv])],
    opsets: { '': 23, 'com.microsoft': 1 },
  };
  const feeds = perSequence(d).map((s) => {
    const f: Record<string, FeedSpec> = {
      Q: { type: 'float32', data: s.q, dims: [1, s.lq, H * D] },
      K: { type: 'float32', data: s.k, dims: [1, s.lk, H * D] },
      V: { type: 'float32', data: s.v, dims: [1, s.lk, H * Dv] },
    };
    if (mode === 'mask') f.M = { type: 'float32', data: bottomRightMask(s.lq, s.lk), dims: [1, 1, s.lq, s.lk] };
    return f;
  });
  const how =
    mode === 'aligned' ? ', unidirectional (Sq = Sk)' : mode === 'mask' ? ', additive bottom-right attention_bias' : '';
  return plan(d, `com.microsoft.MultiHeadAttention${how}${many(d)}`, g, 'Y', feeds);
}

/** [S, Hk, D] rows -> BNSH [1, Hk, S, D]. */
function toBnsh(x: Float32Array, s: number, hk: number, dim: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < s; i++)
    for (let h = 0; h < hk; h++) out.set(x.subarray((i * hk + h) * dim, (i * hk + h + 1) * dim), (h * s + i) * dim);
  return out;
}

/**
 * `com.microsoft.GroupQueryAttention`: causal (bottom-right) only. Sq < Sk becomes Sk - Sq cached
 * keys (`past_key`/`past_value`, BNSH) followed by Sq new keys; with Sq = 1 that is decoding.
 */
function groupQueryAttention(d: WorkloadData): OrtPlan | null {
  const { numHeads: H, numKvHeads: Hk, headDim: D, headDimV: Dv } = d.w;
  if (!d.w.causal || D !== Dv || D % 8 !== 0) return null;
  const withPast = d.w.seqlensQ.some((lq, b) => lq !== d.w.seqlensK[b]);
  const inputs = [f32('Q', [1, 'Sq', H * D]), f32('K', [1, 'Sq', Hk * D]), f32('V', [1, 'Sq', Hk * Dv])];
  if (withPast) inputs.push(f32('PK', [1, Hk, 'Sp', D]), f32('PV', [1, Hk, 'Sp', Dv]));
  inputs.push(i32('seqlens_k', [1]), i32('total_len', []));
  const node: NodeSpec = {
    opType: 'GroupQueryAttention',
    domain: 'com.microsoft',
    inputs: ['Q', 'K', 'V', withPast ? 'PK' : '', withPast ? 'PV' : '', 'seqlens_k', 'total_len'],
    outputs: ['Y', 'present_key', 'present_value'],
    attrs: { num_heads: H, kv_num_heads: Hk, scale: { float: scaleOf(d) } },
  };
  const g: GraphSpec = {
    nodes: [node],
    inputs,
    outputs: [
      f32('Y', [1, 'Sq', H * Dv]),
      f32('present_key', [1, Hk, 'St', D]),
      f32('present_value', [1, Hk, 'St', Dv]),
    ],
    opsets: { '': 23, 'com.microsoft': 1 },
  };
  const feeds = perSequence(d).map((s) => {
    const past = s.lk - s.lq;
    const f: Record<string, FeedSpec> = {
      Q: { type: 'float32', data: s.q, dims: [1, s.lq, H * D] },
      K: { type: 'float32', data: s.k.slice(past * Hk * D), dims: [1, s.lq, Hk * D] },
      V: { type: 'float32', data: s.v.slice(past * Hk * Dv), dims: [1, s.lq, Hk * Dv] },
      seqlens_k: { type: 'int32', data: Int32Array.of(s.lk - 1), dims: [1] },
      total_len: { type: 'int32', data: Int32Array.of(s.lk), dims: [] },
    };
    if (withPast) {
      f.PK = { type: 'float32', data: toBnsh(s.k.subarray(0, past * Hk * D), past, Hk, D), dims: [1, Hk, past, D] };
      f.PV = { type: 'float32', data: toBnsh(s.v.subarray(0, past * Hk * Dv), past, Hk, Dv), dims: [1, Hk, past, Dv] };
    }
    return f;
  });
  return plan(
    d,
    `com.microsoft.GroupQueryAttention${withPast ? ', Sk - Sq keys as past (BNSH)' : ''}${many(d)}`,
    g,
    'Y',
    feeds,
  );
}

/**
 * The unfused graph: Q·Kᵀ (MatMul), additive mask, Softmax, ·V, with the transposes from and to
 * the packed `[S, heads, D]` layout inside the graph. Grouped heads broadcast over a group axis.
 */
function unfused(d: WorkloadData): OrtPlan | null {
  const { numHeads: H, numKvHeads: Hk, headDim: D, headDimV: Dv } = d.w;
  const g_ = H / Hk;
  const mode = causalMode(d);
  const masked = mode !== 'none';
  const inputs = [f32('Q', ['Sq', H, D]), f32('K', ['Sk', Hk, D]), f32('V', ['Sk', Hk, Dv])];
  if (masked) inputs.push(f32('M', ['Sq', 'Sk']));
  const nodes: NodeSpec[] = [
    { opType: 'Mul', inputs: ['Q', 'scale'], outputs: ['Qs'] },
    { opType: 'Reshape', inputs: ['Qs', 'q4'], outputs: ['Q4'] }, // [Sq, Hk, g, D]
    { opType: 'Transpose', inputs: ['Q4'], outputs: ['Qt'], attrs: { perm: { ints: [1, 2, 0, 3] } } }, // [Hk, g, Sq, D]
    { opType: 'Transpose', inputs: ['K'], outputs: ['Kt'], attrs: { perm: { ints: [1, 2, 0] } } }, // [Hk, D, Sk]
    { opType: 'Reshape', inputs: ['Kt', 'k4'], outputs: ['K4'] }, // [Hk, 1, D, Sk]
    { opType: 'MatMul', inputs: ['Qt', 'K4'], outputs: ['S'] }, // [Hk, g, Sq, Sk]
    ...(masked ? [{ opType: 'Add', inputs: ['S', 'M'], outputs: ['Sm'] }] : []),
    { opType: 'Softmax', inputs: [masked ? 'Sm' : 'S'], outputs: ['P'], attrs: { axis: -1 } },
    { opType: 'Transpose', inputs: ['V'], outputs: ['Vt'], attrs: { perm: { ints: [1, 0, 2] } } }, // [Hk, Sk, Dv]
    { opType: 'Reshape', inputs: ['Vt', 'v4'], outputs: ['V4'] }, // [Hk, 1, Sk, Dv]
    { opType: 'MatMul', inputs: ['P', 'V4'], outputs: ['O'] }, // [Hk, g, Sq, Dv]
    { opType: 'Transpose', inputs: ['O'], outputs: ['Ot'], attrs: { perm: { ints: [2, 0, 1, 3] } } }, // [Sq, Hk, g, Dv]
    { opType: 'Reshape', inputs: ['Ot', 'o3'], outputs: ['Y'] }, // [Sq, H, Dv]
  ];
  const g: GraphSpec = {
    nodes,
    inputs,
    outputs: [f32('Y', ['Sq', H, Dv])],
    opsets: { '': 23 },
    initializers: [
      floatScalarInit('scale', scaleOf(d)),
      int64Init('q4', [-1, Hk, g_, D]),
      int64Init('k4', [Hk, 1, D, -1]),
      int64Init('v4', [Hk, 1, -1, Dv]),
      int64Init('o3', [-1, H, Dv]),
    ],
  };
  const feeds = perSequence(d).map((s) => {
    const f: Record<string, FeedSpec> = {
      Q: { type: 'float32', data: s.q, dims: [s.lq, H, D] },
      K: { type: 'float32', data: s.k, dims: [s.lk, Hk, D] },
      V: { type: 'float32', data: s.v, dims: [s.lk, Hk, Dv] },
    };
    if (masked) f.M = { type: 'float32', data: bottomRightMask(s.lq, s.lk), dims: [s.lq, s.lk] };
    return f;
  });
  return plan(d, `MatMul+Softmax graph${masked ? ', additive bottom-right mask' : ''}${many(d)}`, g, 'Y', feeds);
}

/** Every onnxruntime candidate that computes this workload's semantics. */
export function ortPlans(d: WorkloadData): OrtPlan[] {
  return [attention23(d), multiHeadAttention(d), groupQueryAttention(d), unfused(d)].filter(
    (p): p is OrtPlan => p !== null,
  );
}
