/**
 * Merging partial results (docs/semantics.md, "Merging partial results"): attention over a key set split
 * into disjoint parts, recovered from each part's `out` and `lse`. Host tensors; float64 arithmetic per
 * element, rounded once into the parts' dtype.
 */
import { rangeErr, readKey, typeErr, words } from './errors.js';
import { decode, f32ToBf16, f32ToF16 } from './half.js';
import { readHostTensor } from './inputs.js';
import type { DType, HostData, Tensor, TensorInput } from './types.js';

/** One part: attention over a subset of the keys, computed with `returnLse: true`. */
export interface AttentionPart {
  /** `[totalQ, numHeads, headDimV]` (packed) or `[batch, seqlenQ, numHeads, headDimV]` (fixed). */
  readonly out: TensorInput;
  /** float32, `[numHeads, totalQ]` (packed) or `[batch, numHeads, seqlenQ]` (fixed). */
  readonly lse: TensorInput;
}

/** The merged result: `out` in the parts' dtype and shape, `lse` float32. */
export interface MergedAttention {
  out: Tensor;
  lse: Tensor;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/**
 * x rounded to float32 toward zero, with the last bit set when that was inexact ("round to odd"). Rounding
 * this to float16 or bfloat16 (nearest, ties to even) is the correctly rounded half of x: float32 keeps more
 * than two bits beyond either at every magnitude, so no tie is made or broken by the first step.
 */
function toOddFloat32(x: number): number {
  const f = Math.fround(x);
  if (f === x || Number.isNaN(x)) return f;
  f32[0] = f;
  if (Math.abs(f) > Math.abs(x)) u32[0] = u32[0]! - 1;
  u32[0] = u32[0]! | 1;
  return f32[0]!;
}

/** float64 values rounded once to `dtype` (nearest, ties to even; NaN stays NaN). */
export function roundTo(values: Float64Array, dtype: DType): HostData {
  if (dtype === 'float32') return Float32Array.from(values);
  const enc = dtype === 'float16' ? f32ToF16 : f32ToBf16;
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = enc(toOddFloat32(values[i]!));
  return out;
}

const sameShape = (a: readonly number[], b: readonly number[]) =>
  a.length === b.length && a.every((x, i) => x === b[i]);

function readPart(part: unknown, i: number): { out: Tensor; lse: Tensor } {
  const name = `parts[${i}]`;
  if (part === null || typeof part !== 'object') throw typeErr('a part { out, lse }', name, part);
  const read = (key: 'out' | 'lse') => {
    const t = readKey(part, key, `${name}.${key}`);
    if (t === undefined && key === 'lse')
      throw typeErr('a float32 lse tensor (compute the part with returnLse: true)', `${name}.lse`, t);
    const loc = t !== null && typeof t === 'object' ? readKey(t, 'location', `${name}.${key}.location`) : undefined;
    if (loc === 'wasm' || loc === 'cuda')
      throw typeErr(
        "a host tensor (engine.mergeAttention merges a cuda engine's device results; or engine.download() it first)",
        `${name}.${key}`,
        words(`a tensor on '${loc}'`),
      );
    return readHostTensor(t as TensorInput, `${name}.${key}`);
  };
  return { out: read('out'), lse: read('lse') };
}

/** The shapes every part shares: out `[batch, seqlen, heads, dv]` (packed: batch 1) and lse `[batch, heads, seqlen]`. */
export interface PartsLayout {
  readonly shape: number[];
  readonly lseShape: number[];
  readonly dtype: DType;
  readonly batch: number;
  readonly seqlen: number;
  readonly heads: number;
  readonly dv: number;
}

type Shaped = { readonly shape: readonly number[]; readonly dtype: DType };

/** The parts' common layout, or the TypeError / RangeError naming the part that differs. */
export function partsLayout(ps: readonly { out: Shaped; lse: Shaped }[]): PartsLayout {
  if (ps.length < 1) throw rangeErr('at least one part', 'parts', words('[]'));
  const shape = [...ps[0]!.out.shape],
    dtype = ps[0]!.out.dtype;
  if (shape.length !== 3 && shape.length !== 4)
    throw rangeErr(
      'a shape of rank 3 [totalQ, numHeads, headDimV] or 4 [batch, seqlenQ, numHeads, headDimV]',
      'parts[0].out.shape',
      shape,
    );
  const packed = shape.length === 3;
  const [batch, seqlen, heads, dv] = (packed ? [1, ...shape] : shape) as [number, number, number, number];
  const lseShape = packed ? [heads, seqlen] : [batch, heads, seqlen];
  ps.forEach(({ out, lse }, i) => {
    if (i > 0 && !sameShape(out.shape, shape))
      throw rangeErr(`shape [${shape.join(', ')}] like parts[0].out`, `parts[${i}].out.shape`, [...out.shape]);
    if (out.dtype !== dtype) throw typeErr(`dtype '${dtype}' like parts[0].out`, `parts[${i}].out.dtype`, out.dtype);
    if (lse.dtype !== 'float32') throw typeErr("dtype 'float32'", `parts[${i}].lse.dtype`, lse.dtype);
    if (!sameShape(lse.shape, lseShape))
      throw rangeErr(
        `shape [${lseShape.join(', ')}] (${packed ? '[numHeads, totalQ]' : '[batch, numHeads, seqlenQ]'} for out [${shape.join(', ')}])`,
        `parts[${i}].lse.shape`,
        [...lse.shape],
      );
  });
  return { shape, lseShape, dtype, batch, seqlen, heads, dv };
}

/**
 * Merges the results of attention over disjoint parts of each sequence's keys (a shared prefix and
 * per-sequence suffixes, a cache split across devices or workers) into the result over all of them:
 * `lse = log(sum_p exp(lse_p))` and `out = sum_p exp(lse_p - lse) * out_p`, per row and head. Where every
 * part's lse is -Infinity (no part saw a key), `out = 0` and `lse = -Infinity`, never NaN; a part whose lse is
 * -Infinity adds nothing (its out is 0 by the contract). NaN in a part's lse makes that row and head NaN; where
 * some lse is +Infinity the result's lse is +Infinity and out is the mean of those parts' outs (the limit).
 * Every part has the same shapes and dtype; out float32, float16 or bfloat16, lse float32. Computed in float64
 * and rounded once. Parts computed with `sinks` each count the sink: give the sink to one part only.
 */
export function mergeAttention(parts: readonly AttentionPart[]): MergedAttention {
  if (!Array.isArray(parts)) throw typeErr('an array of parts { out, lse }', 'parts', parts);
  const ps = [...parts].map(readPart);
  const { shape, lseShape, dtype, batch, seqlen, heads, dv } = partsLayout(ps);
  const outs = ps.map((p) => decode(p.out.data, dtype));
  const lses = ps.map((p) => p.lse.data as Float32Array);
  const out = new Float64Array(outs[0]!.length);
  const lse = new Float64Array(lses[0]!.length);
  const w = new Float64Array(ps.length);
  for (let b = 0; b < batch; b++)
    for (let h = 0; h < heads; h++)
      for (let s = 0; s < seqlen; s++) {
        const li = (b * heads + h) * seqlen + s,
          oi = ((b * seqlen + s) * heads + h) * dv;
        let m = -Infinity;
        for (const l of lses) m = l[li]! > m || Number.isNaN(l[li]) ? l[li]! : m;
        if (m === -Infinity) {
          lse[li] = -Infinity;
          continue;
        }
        let total: number;
        if (Number.isNaN(m)) total = NaN;
        else if (m === Infinity) {
          let inf = 0;
          lses.forEach((l, p) => {
            w[p] = l[li] === Infinity ? 1 : 0;
            inf += w[p]!;
          });
          for (let p = 0; p < ps.length; p++) w[p] = w[p]! / inf;
          total = Infinity;
        } else {
          let sum = 0;
          for (const l of lses) sum += Math.exp(l[li]! - m);
          total = m + Math.log(sum);
          lses.forEach((l, p) => {
            w[p] = Math.exp(l[li]! - total);
          });
        }
        lse[li] = total;
        for (let p = 0; p < ps.length; p++) {
          const x = lses[p]![li]!;
          if (x === -Infinity || (total === Infinity && w[p] === 0)) continue;
          const o = outs[p]!;
          for (let d = 0; d < dv; d++) out[oi + d] += Number.isNaN(total) ? NaN : w[p]! * o[oi + d]!;
        }
      }
  return {
    out: { data: roundTo(out, dtype), shape, dtype, location: 'cpu' },
    lse: { data: Float32Array.from(lse), shape: lseShape, dtype: 'float32', location: 'cpu' },
  };
}
