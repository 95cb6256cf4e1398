/**
 * The yardstick for half-precision engines (as flash-attention's tests use): plain attention with
 * the inputs in the half dtype, P rounded to it before P·V, and the output rounded to it. An engine
 * may be at most twice as far from the float64 reference as this.
 */
import { decode, encode } from '../../src/half.js';
import type { Problem } from '../../src/problem.js';
import { referenceProblem } from '../../src/reference.js';
import type { DType, Tensor } from '../../src/types.js';

export function naiveLowPrecision(p: Problem<Tensor>, dtype: DType): Float64Array {
  const round = (x: Float64Array) => decode(encode(x, dtype), dtype);
  // Rounding P to the dtype is the same as rounding V's weights; emulate it per row through a
  // reference run whose probabilities are rounded: out = sum(round(p_j) v_j) / sum(p_j).
  const { out } = referenceProblem(p, (w) => Math.fround(round(Float64Array.of(w))[0]!));
  return round(out);
}
