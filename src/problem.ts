import type { DType, HostData, Precision } from './types.js';

/**
 * One validated attention call in packed form, the only thing engines see. Fixed-length calls
 * are turned into this form by the façade; `causal` is folded into `windowRight = 0`.
 */
export interface Problem<D = HostData> {
  readonly dtype: DType;
  readonly q: D;
  readonly k: D;
  readonly v: D;
  readonly cuSeqlensQ: Int32Array;
  readonly cuSeqlensK: Int32Array;
  readonly batch: number;
  readonly totalQ: number;
  readonly totalK: number;
  readonly maxSeqlenQ: number;
  readonly maxSeqlenK: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly headDimV: number;
  /** -1 = unbounded. */
  readonly windowLeft: number;
  /** -1 = unbounded; 0 when causal. */
  readonly windowRight: number;
  readonly softmaxScale: number;
  readonly softcap: number;
  readonly alibiSlopes: Float32Array | null;
  /** `[numHeads]` sink logits (natural units), or null. */
  readonly sinks: Float32Array | null;
  readonly returnLse: boolean;
  /** options.precision: 'float16' lets an engine compute float32 inputs as float16 (the cuda engine does). */
  readonly precision: Precision;
  /** Shape of `out`: `[totalQ, numHeads, headDimV]`, or `[batch, seqlenQ, numHeads, headDimV]` for fixed-length calls. */
  readonly outShape: readonly number[];
  /** Shape of `lse`: `[numHeads, totalQ]`, or `[batch, numHeads, seqlenQ]` for fixed-length calls. */
  readonly lseShape: readonly number[];
  /**
   * 0 for packed calls: lse of (head h, packed row r) is at `h * totalQ + r`. For fixed-length calls
   * the seqlenQ S: lse of (sequence b, head h, row i) is at `(b * numHeads + h) * S + i`.
   */
  readonly fixedSeqlenQ: number;
  /**
   * Tensors to write `out` and `lse` into (options.out / options.lse), or null: new ones. On q's side: device
   * tensors of the engine for device q; for host q, host tensors (shaped `outShape` / `lseShape`, `data` the
   * caller's Float32Array / Uint16Array of exactly that length), which may share memory with q, k, v or the new
   * rows: an engine writes their `data` only once it has read every input, and returns these objects as its
   * results (the façade hands the caller back its own objects).
   */
  readonly outInto: D | null;
  readonly lseInto: D | null;
}

/** Index of the lse of (sequence b, head h, row i of the sequence). */
export function lseIndex(p: Problem<unknown>, b: number, h: number, i: number): number {
  return p.fixedSeqlenQ > 0 ? (b * p.numHeads + h) * p.fixedSeqlenQ + i : h * p.totalQ + p.cuSeqlensQ[b]! + i;
}

/** What an engine returns for a Problem: `out` in the problem's dtype, `lse` as `[numHeads, totalQ]`. */
export interface Output<D = HostData> {
  out: D;
  lse: Float32Array | null;
}

/** First and last visible key of row i (0-based in its sequence), clamped to [0, Lk). lo > hi means none. */
export function visibleRange(i: number, lq: number, lk: number, left: number, right: number): [number, number] {
  const d = i + lk - lq;
  const lo = left >= 0 ? Math.max(0, d - left) : 0;
  const hi = right >= 0 ? Math.min(lk - 1, d + right) : lk - 1;
  return [lo, hi];
}

/** Fraction of (query, key) pairs the mask keeps, for FLOP counts. */
export function keptPairs(
  p: Pick<Problem, 'cuSeqlensQ' | 'cuSeqlensK' | 'batch' | 'windowLeft' | 'windowRight'>,
): number {
  let kept = 0;
  for (let b = 0; b < p.batch; b++) {
    const lq = p.cuSeqlensQ[b + 1]! - p.cuSeqlensQ[b]!;
    const lk = p.cuSeqlensK[b + 1]! - p.cuSeqlensK[b]!;
    for (let i = 0; i < lq; i++) {
      const [lo, hi] = visibleRange(i, lq, lk, p.windowLeft, p.windowRight);
      if (hi >= lo) kept += hi - lo + 1;
    }
  }
  return kept;
}

/** FlashAttention's FLOP count of a forward pass: 2 matmuls of 2 FLOPs per multiply-add, masked pairs excluded. */
export function problemFlops(p: Problem<unknown>): number {
  return 2 * keptPairs(p) * p.numHeads * (p.headDim + p.headDimV);
}
