/** Checks a float32 output against the float64 reference with docs/semantics.md's float32 tolerance. */

export interface Check {
  ok: boolean;
  /** max |out - ref| / max(1, |ref|) */
  maxErr: number;
  /** where the worst element is, and the two values */
  worst: string;
}

export const F32_TOLERANCE = 1e-4;

export function checkAgainst(out: ArrayLike<number>, ref: Float64Array, tol = F32_TOLERANCE): Check {
  if (out.length !== ref.length)
    return { ok: false, maxErr: Infinity, worst: `length ${out.length}, expected ${ref.length}` };
  let maxErr = 0,
    at = 0;
  for (let i = 0; i < ref.length; i++) {
    const e = Math.abs(out[i]! - ref[i]!) / Math.max(1, Math.abs(ref[i]!));
    if (!(e <= maxErr)) {
      maxErr = Number.isNaN(e) ? Infinity : e;
      at = i;
      if (maxErr === Infinity) break;
    }
  }
  return { ok: maxErr <= tol, maxErr, worst: `element ${at}: ${out[at]} vs reference ${ref[at]}` };
}
