/**
 * Runs conformance cases on an engine: fresh seeded inputs, outputs poisoned before the call,
 * every element compared with the float64 reference under docs/semantics.md's tolerances.
 * Used by vitest and by `flashattn doctor` (which must run without a test framework).
 */
import { setKnobs } from '../../src/knobs.js';
import { decode, encode } from '../../src/half.js';
import { referenceProblem } from '../../src/reference.js';
import type { AnyTensor, AttentionOptions, DType, Engine, Precision, Tensor, VarlenOptions } from '../../src/types.js';
import { validateFixed, validateVarlen } from '../../src/validate.js';
import { type Case, caseId } from './cases.js';
import { randn, rng } from './random.js';
import { naiveLowPrecision } from './naive.js';

export interface CaseResult {
  id: string;
  seed: number;
  /** Set when the engine cannot run the case, with its reason. */
  skipped?: string;
  ok: boolean;
  /** Worst error against the reference, in the measure the tolerance applies to. */
  error: number;
  tolerance: number;
  detail: string;
}

export interface Inputs {
  q: Tensor;
  k: Tensor;
  v: Tensor;
  options: VarlenOptions;
  fixed: boolean;
}

const sum = (a: number[]) => a.reduce((x, y) => x + y, 0);

/** Builds a case's inputs from a seed: the same seed gives the same tensors everywhere. */
export function buildInputs(c: Case, seed: number): Inputs {
  const next = rng(seed);
  const totalQ = sum(c.seqlensQ),
    totalK = sum(c.seqlensK),
    batch = c.seqlensQ.length;
  const qv = randn(next, totalQ * c.numHeads * c.headDim, c.qScale ?? 1);
  const kv = randn(next, totalK * c.numKvHeads * c.headDim);
  const vv = randn(next, totalK * c.numKvHeads * c.headDimV);
  if (c.badIn) {
    const row = (c.badIn === 'q' ? c.seqlensQ[0]! : c.seqlensK[0]!) - 1;
    const arr = { q: qv, k: kv, v: vv }[c.badIn],
      heads = c.badIn === 'q' ? c.numHeads : c.numKvHeads;
    const dim = c.badIn === 'v' ? c.headDimV : c.headDim;
    if (row >= 0) arr[row * heads * dim] = c.bad === 'inf' ? Infinity : c.bad === '-inf' ? -Infinity : NaN;
  }
  const cu = (lens: number[]) => Int32Array.from([0, ...lens.map((_, i) => sum(lens.slice(0, i + 1)))]);
  const t = (data: Float32Array, shape: number[]): Tensor => ({ data: encode(data, c.dtype), shape, dtype: c.dtype });
  const alibiSlopes = c.alibi
    ? Float32Array.from({ length: c.numHeads }, (_, h) => 2 ** ((-8 * (h + 1)) / c.numHeads))
    : undefined;
  const options: VarlenOptions = {
    cuSeqlensQ: cu(c.seqlensQ),
    cuSeqlensK: cu(c.seqlensK),
    causal: c.causal,
    window: c.window,
    softmaxScale: c.softmaxScale,
    softcap: c.softcap,
    alibiSlopes,
    sinks: c.sinks ? Float32Array.from({ length: c.numHeads }, () => 3 * (next() - 0.5)) : undefined,
    returnLse: c.returnLse,
  };
  if (c.fixed) {
    const sq = c.seqlensQ[0] ?? 0,
      sk = c.seqlensK[0] ?? 0;
    return {
      q: t(qv, [batch, sq, c.numHeads, c.headDim]),
      k: t(kv, [batch, sk, c.numKvHeads, c.headDim]),
      v: t(vv, [batch, sk, c.numKvHeads, c.headDimV]),
      options,
      fixed: true,
    };
  }
  return {
    q: t(qv, [totalQ, c.numHeads, c.headDim]),
    k: t(kv, [totalK, c.numKvHeads, c.headDim]),
    v: t(vv, [totalK, c.numKvHeads, c.headDimV]),
    options,
    fixed: false,
  };
}

/** The options of the call's form: the fixed-length form takes no cuSeqlens. */
export function formOptions(x: Inputs): AttentionOptions | VarlenOptions {
  if (!x.fixed) return x.options;
  const { cuSeqlensQ: _q, cuSeqlensK: _k, ...fixed } = x.options;
  return fixed;
}

/** Runs an engine on inputs (through device tensors when `device` is set). */
export async function runEngine(engine: Engine, x: Inputs, device = false) {
  const fixedOptions = formOptions(x);
  if (!device)
    return x.fixed ? engine.attention(x.q, x.k, x.v, fixedOptions) : engine.attentionVarlen(x.q, x.k, x.v, x.options);
  const [q, k, v] = await Promise.all([engine.upload(x.q), engine.upload(x.k), engine.upload(x.v)]);
  try {
    const r = x.fixed
      ? await engine.attention(q, k, v, fixedOptions)
      : await engine.attentionVarlen(q, k, v, x.options);
    // the cuda engine returns device tensors; the wasm engine returns host tensors even for resident inputs
    const host = async (t: AnyTensor) => ('data' in t ? t : engine.download(t));
    const out = await host(r.out);
    const lse = r.lse ? await host(r.lse) : undefined;
    if (!('data' in r.out)) r.out.dispose();
    if (r.lse && !('data' in r.lse)) r.lse.dispose();
    return { out, lse };
  } finally {
    q.dispose();
    k.dispose();
    v.dispose();
  }
}

export const HALF_TOL: Record<DType, number> = { float32: 0, float16: 2e-3, bfloat16: 1e-2 };

/**
 * The precision an engine computes a dtype in: float32 inputs in float32, unless the call asked for
 * precision 'float16' and the engine takes it (the cuda engine, `info.float32Fast`).
 */
export function computeDtype(engine: Engine, dtype: DType, precision: Precision = 'float32'): DType {
  const f = precision === 'float16' ? engine.info['float32Fast'] : engine.info['float32Compute'];
  return dtype === 'float32' && (f === 'float16' || f === 'bfloat16') ? f : dtype;
}

function sameShape(a: readonly number[], b: readonly number[]) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

export async function runCase(
  engine: Engine,
  c: Case,
  seed: number,
  opts: { device?: boolean; precision?: Precision } = {},
): Promise<CaseResult> {
  const id = caseId(c) + (opts.precision && c.dtype === 'float32' ? ` precision ${opts.precision}` : '');
  const x = buildInputs(c, seed);
  if (opts.precision) x.options = { ...x.options, precision: opts.precision };
  const p = x.fixed ? validateFixed(x.q, x.k, x.v, formOptions(x)) : validateVarlen(x.q, x.k, x.v, x.options);
  const res = (ok: boolean, error: number, tolerance: number, detail: string, skipped?: string): CaseResult => ({
    id,
    seed,
    ok,
    error,
    tolerance,
    detail,
    skipped,
  });
  const why = engine.supports(x.q, x.k, x.v, formOptions(x));
  if (why !== null) return res(true, 0, 0, '', why);

  const cd = computeDtype(engine, c.dtype, opts.precision);
  // The reference sees exactly the values the engine computes with.
  const rounded = (t: Tensor): Tensor =>
    cd === c.dtype ? t : { ...t, data: encode(t.data as Float32Array, cd), dtype: cd };
  const refP = { ...p, q: rounded(x.q), k: rounded(x.k), v: rounded(x.v), dtype: cd };
  const ref = referenceProblem(refP);

  const restore = setKnobs({ poisonOutputs: true });
  let r: Awaited<ReturnType<typeof runEngine>>;
  try {
    r = await runEngine(engine, x, opts.device);
  } finally {
    restore();
  }
  if (r.out.dtype !== c.dtype) return res(false, NaN, 0, `out.dtype ${r.out.dtype}, expected ${c.dtype}`);
  if (!sameShape(r.out.shape, p.outShape))
    return res(false, NaN, 0, `out.shape [${r.out.shape}], expected [${p.outShape}]`);
  const out = decode(r.out.data, r.out.dtype);

  // Not finite exactly where the reference is not: a NaN or Inf elsewhere is an unwritten (poisoned)
  // element or a bad value that leaked into a row that cannot see it.
  for (let i = 0; i < out.length; i++) {
    if (Number.isFinite(out[i]) !== Number.isFinite(ref.out[i]))
      return res(false, NaN, 0, `out[${i}] = ${out[i]}, reference ${ref.out[i]} (unwritten, or NaN/Inf leaked)`);
  }
  let error: number, tolerance: number, detail: string;
  if (cd === 'float32') {
    error = 0;
    let at = -1;
    for (let i = 0; i < out.length; i++) {
      if (!Number.isFinite(ref.out[i])) continue;
      const e = Math.abs(out[i]! - ref.out[i]!) / Math.max(1, Math.abs(ref.out[i]!));
      if (e > error) {
        error = e;
        at = i;
      }
    }
    tolerance = 1e-4;
    detail = at >= 0 ? `max scaled error ${error.toExponential(2)} at out[${at}]` : 'exact';
  } else {
    const relErr = (o: Float64Array) => {
      let num = 0,
        den = 0;
      for (let i = 0; i < o.length; i++) {
        if (!Number.isFinite(ref.out[i])) continue;
        num += (o[i]! - ref.out[i]!) ** 2;
        den += ref.out[i]! ** 2;
      }
      return den > 0 ? Math.sqrt(num / den) : Math.sqrt(num);
    };
    error = relErr(out);
    const naive = relErr(naiveLowPrecision(refP, cd));
    tolerance = Math.min(HALF_TOL[cd], Math.max(2 * naive, 1e-6));
    detail = `relative error ${error.toExponential(2)} (naive ${cd}: ${naive.toExponential(2)})`;
  }
  if (!(error <= tolerance)) return res(false, error, tolerance, detail);

  if (c.returnLse) {
    if (!r.lse) return res(false, error, tolerance, 'lse missing');
    if (r.lse.dtype !== 'float32' || !sameShape(r.lse.shape, p.lseShape))
      return res(false, error, tolerance, `lse ${r.lse.dtype} [${r.lse.shape}], expected float32 [${p.lseShape}]`);
    const lse = r.lse.data as Float32Array;
    const lseTol = cd === 'float32' ? 1e-4 : 1e-3;
    for (let i = 0; i < lse.length; i++) {
      const a = lse[i]!,
        b = ref.lse[i]!;
      const bad = Number.isNaN(b)
        ? !Number.isNaN(a)
        : b === -Infinity
          ? a !== -Infinity
          : !(Math.abs(a - b) <= lseTol * Math.max(1, Math.abs(b)));
      if (bad) return res(false, error, tolerance, `lse[${i}] = ${a}, reference ${b}`);
    }
  } else if (r.lse) return res(false, error, tolerance, 'lse returned without returnLse');
  return res(true, error, tolerance, detail);
}
