/**
 * Engines against each other: the same case's inputs on two engines must give the same function
 * (within the sum of their tolerances, NaN and -Infinity in the same places), and the same bad
 * input must be refused by both with the same error, word for word.
 */
import { decode, encode } from '../../src/half.js';
import type { DType, Engine, Tensor, VarlenOptions } from '../../src/types.js';
import { type Case, caseId } from './cases.js';
import { buildInputs, computeDtype, HALF_TOL, runEngine } from './run.js';

export interface CrossResult {
  id: string;
  ok: boolean;
  detail: string;
}

const PRECISION: DType[] = ['float32', 'float16', 'bfloat16'];

export async function compareEngines(a: Engine, b: Engine, c: Case, seed: number): Promise<CrossResult> {
  const id = caseId(c);
  // The coarser of the two engines' compute precisions decides the tolerance.
  const cd = [computeDtype(a, c.dtype), computeDtype(b, c.dtype)].sort(
    (p, q) => PRECISION.indexOf(q) - PRECISION.indexOf(p),
  )[0]!;
  const x = buildInputs(c, seed);
  if (cd !== c.dtype) {
    // One engine computes float32 inputs in a half type: give both the same rounded values, so the
    // comparison is of their arithmetic, not of the input rounding (which large scores amplify).
    const round = (t: Tensor): Tensor => ({ ...t, data: Float32Array.from(decode(encode(t.data, cd), cd)) });
    Object.assign(x, { q: round(x.q), k: round(x.k), v: round(x.v) });
  }
  const [ra, rb] = [await runEngine(a, x), await runEngine(b, x)];
  const oa = decode(ra.out.data, ra.out.dtype),
    ob = decode(rb.out.data, rb.out.dtype);
  const tol = cd === 'float32' ? 2e-4 : 2 * HALF_TOL[cd];
  let num = 0,
    den = 0,
    worst = 0;
  for (let i = 0; i < oa.length; i++) {
    // Not finite in the same places (a NaN or Inf input's rows); those values are not compared.
    if (Number.isFinite(oa[i]) !== Number.isFinite(ob[i]))
      return { id, ok: false, detail: `out[${i}]: ${oa[i]} against ${ob[i]}` };
    if (!Number.isFinite(oa[i])) continue;
    const d = oa[i]! - ob[i]!;
    num += d * d;
    den += ob[i]! * ob[i]!;
    worst = Math.max(worst, Math.abs(d) / Math.max(1, Math.abs(ob[i]!)));
  }
  // float32 on both: element-wise, as the contract's float32 bound; halves: relative norm.
  const err = cd === 'float32' ? worst : den > 0 ? Math.sqrt(num / den) : Math.sqrt(num);
  if (!(err <= tol)) return { id, ok: false, detail: `difference ${err.toExponential(2)} over ${tol}` };
  if (ra.lse && rb.lse) {
    const la = ra.lse.data as Float32Array,
      lb = rb.lse.data as Float32Array;
    for (let i = 0; i < la.length; i++) {
      const p = la[i]!,
        q = lb[i]!;
      const same = Number.isNaN(q)
        ? Number.isNaN(p)
        : q === -Infinity
          ? p === -Infinity
          : Math.abs(p - q) <= 2e-3 * Math.max(1, Math.abs(q));
      if (!same) return { id, ok: false, detail: `lse[${i}]: ${p} against ${q}` };
    }
  } else if (!ra.lse !== !rb.lse) return { id, ok: false, detail: 'only one engine returned lse' };
  return { id, ok: true, detail: `difference ${err.toExponential(2)}` };
}

const T = (shape: number[]): Tensor => ({
  data: new Float32Array(shape.reduce((p, q) => p * q, 1)).fill(0.25),
  shape,
  dtype: 'float32',
});
const o = (x: Partial<VarlenOptions> = {}): VarlenOptions => ({
  cuSeqlensQ: Int32Array.of(0, 2, 6),
  cuSeqlensK: Int32Array.of(0, 4, 9),
  ...x,
});
const q = T([6, 4, 8]),
  k = T([9, 2, 8]),
  v = T([9, 2, 8]);

/** A sample of bad calls, one per kind of rule (each rule is tested in full against the façade). */
export const badCalls: [string, (e: Engine) => Promise<unknown>][] = [
  ['q not a tensor', (e) => e.attentionVarlen(null as unknown as Tensor, k, v, o())],
  ['wrong rank', (e) => e.attentionVarlen(T([6, 32]), k, v, o())],
  ['dtype mismatch', (e) => e.attentionVarlen(q, { ...k, data: new Uint16Array(144), dtype: 'float16' }, v, o())],
  ['data length', (e) => e.attentionVarlen({ ...q, data: new Float32Array(5) }, k, v, o())],
  ['heads not a multiple', (e) => e.attentionVarlen(T([6, 3, 8]), k, v, o())],
  ['headDim 257', (e) => e.attentionVarlen(T([6, 4, 257]), T([9, 2, 257]), v, o())],
  ['cuSeqlens decreasing', (e) => e.attentionVarlen(q, k, v, o({ cuSeqlensK: Int32Array.of(0, 5, 4, 9) }))],
  ['cuSeqlens last', (e) => e.attentionVarlen(q, k, v, o({ cuSeqlensQ: Int32Array.of(0, 2, 5) }))],
  ['window', (e) => e.attentionVarlen(q, k, v, o({ window: [-2, 0] }))],
  ['causal with right window', (e) => e.attentionVarlen(q, k, v, o({ causal: true, window: [-1, 3] }))],
  ['softcap', (e) => e.attentionVarlen(q, k, v, o({ softcap: -1 }))],
  ['alibi length', (e) => e.attentionVarlen(q, k, v, o({ alibiSlopes: [1, 2] }))],
  ['fixed batch', (e) => e.attention(T([2, 3, 4, 8]), T([3, 3, 2, 8]), T([3, 3, 2, 8]))],
];

/** Runs a bad call on both engines: the same error class and message, or a failure saying how they differ. */
export async function compareErrors(
  a: Engine,
  b: Engine,
  call: (e: Engine) => Promise<unknown>,
): Promise<{ ok: boolean; detail: string }> {
  const err = async (e: Engine) =>
    call(e).then(
      () => null,
      (x: unknown) => x as Error,
    );
  const [ea, eb] = [await err(a), await err(b)];
  if (!ea || !eb)
    return {
      ok: false,
      detail: `${a.backend}: ${ea?.message ?? 'accepted'}; ${b.backend}: ${eb?.message ?? 'accepted'}`,
    };
  const same =
    ea.constructor === eb.constructor &&
    ea.message === eb.message &&
    (ea instanceof TypeError || ea instanceof RangeError);
  return {
    ok: same,
    detail: same
      ? `${ea.name}: ${ea.message}`
      : `${a.backend}: ${ea.name}: ${ea.message}; ${b.backend}: ${eb.name}: ${eb.message}`,
  };
}
