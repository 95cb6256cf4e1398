/**
 * The float64 reference: docs/semantics.md written out literally, one row at a time (it holds one row
 * of scores, never the whole matrix). Slow on purpose; engines are checked against it.
 */
import { decode } from './half.js';
import type { Problem } from './problem.js';
import { lseIndex, visibleRange } from './problem.js';
import type { AttentionOptions, AttentionResult, Tensor, TensorInput, VarlenOptions } from './types.js';
import { validateFixed, validateVarlen } from './validate.js';

export interface ReferenceOutput {
  /** laid out as `p.outShape` */
  out: Float64Array;
  /** laid out as `p.lseShape` */
  lse: Float64Array;
}

/**
 * Reference on a validated problem; inputs are decoded to float64 exactly. `roundP` (for the
 * naive half-precision yardstick only) rounds each unnormalised probability before P·V.
 */
export function referenceProblem(p: Problem<Tensor>, roundP?: (w: number) => number): ReferenceOutput {
  const q = decode(p.q.data, p.dtype),
    k = decode(p.k.data, p.dtype),
    v = decode(p.v.data, p.dtype);
  const { numHeads: H, numKvHeads: Hk, headDim: D, headDimV: Dv, totalQ } = p;
  const out = new Float64Array(totalQ * H * Dv);
  const lse = new Float64Array(H * totalQ);
  const group = H / Hk;
  const s = new Float64Array(p.maxSeqlenK);
  for (let b = 0; b < p.batch; b++) {
    const q0 = p.cuSeqlensQ[b]!,
      k0 = p.cuSeqlensK[b]!;
    const lq = p.cuSeqlensQ[b + 1]! - q0,
      lk = p.cuSeqlensK[b + 1]! - k0;
    for (let h = 0; h < H; h++) {
      const hk = Math.floor(h / group);
      const slope = p.alibiSlopes ? p.alibiSlopes[h]! : 0;
      for (let i = 0; i < lq; i++) {
        const row = q0 + i;
        const [lo, hi] = visibleRange(i, lq, lk, p.windowLeft, p.windowRight);
        const o = (row * H + h) * Dv;
        const sink = p.sinks ? p.sinks[h]! : -Infinity;
        if (hi < lo) {
          lse[lseIndex(p, b, h, i)] = sink;
          continue;
        }
        const qo = (row * H + h) * D;
        let m = -Infinity;
        for (let j = lo; j <= hi; j++) {
          const ko = ((k0 + j) * Hk + hk) * D;
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q[qo + d]! * k[ko + d]!;
          let x = p.softmaxScale * dot;
          if (p.softcap > 0) x = p.softcap * Math.tanh(x / p.softcap);
          if (p.alibiSlopes) x -= slope * Math.abs(i + lk - lq - j);
          s[j] = x;
          if (x > m || Number.isNaN(x)) m = Number.isNaN(m) ? m : x;
        }
        // A sink joins the denominator (and the max, so that exp cannot overflow) with no value row.
        if (p.sinks && !Number.isNaN(m)) m = Math.max(m, sink);
        let sum = p.sinks ? Math.exp(sink - m) : 0;
        for (let j = lo; j <= hi; j++) sum += Math.exp(s[j]! - m);
        for (let j = lo; j <= hi; j++) {
          const e = Math.exp(s[j]! - m);
          const w = (roundP ? roundP(e) : e) / sum;
          const vo = ((k0 + j) * Hk + hk) * Dv;
          for (let d = 0; d < Dv; d++) out[o + d] += w * v[vo + d]!;
        }
        lse[lseIndex(p, b, h, i)] = m + Math.log(sum);
      }
    }
  }
  return { out, lse };
}

export interface ReferenceResult extends AttentionResult {
  out64: Float64Array;
  lse64: Float64Array;
}

function wrap(p: Problem<Tensor>, r: ReferenceOutput): ReferenceResult {
  return {
    out: { data: Float32Array.from(r.out), shape: p.outShape, dtype: 'float32' },
    lse: p.returnLse ? { data: Float32Array.from(r.lse), shape: p.lseShape, dtype: 'float32' } : undefined,
    out64: r.out,
    lse64: r.lse,
  };
}

/**
 * The float64 reference with the engines' arguments. Results are float32 tensors (`out`, `lse`)
 * plus the float64 arrays they were rounded from, always new ones: `options.out` / `options.lse` are
 * checked as the engines check them (`lse` implies `returnLse`) but never written.
 */
export function referenceAttentionVarlen(
  q: TensorInput,
  k: TensorInput,
  v: TensorInput,
  options: VarlenOptions,
): ReferenceResult {
  const p = validateVarlen(q, k, v, options);
  return wrap(p, referenceProblem(p));
}

/** The float64 reference for the fixed-length form. */
export function referenceAttention(
  q: TensorInput,
  k: TensorInput,
  v: TensorInput,
  options: AttentionOptions = {},
): ReferenceResult {
  const p = validateFixed(q, k, v, options);
  return wrap(p, referenceProblem(p));
}
