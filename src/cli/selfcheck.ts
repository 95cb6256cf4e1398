/**
 * The checks `flashattn doctor` and `flashattn demo` run on an installed package, through the public
 * API only: seeded calls covering each feature, compared with the float64 reference under the
 * contract's tolerances (docs/semantics.md "Accuracy"), the engines against each other, and bad
 * input rejected with the same words by every engine. The exhaustive suite is the repository's
 * test/conformance; this is the installed package's proof that the engines it loads compute it.
 */
import { decode, encode } from '../half.js';
import { referenceAttentionVarlen } from '../reference.js';
import type { AttentionOptions, DType, Engine, Tensor, TensorInput, VarlenOptions } from '../types.js';
import { randn, rng } from './random.js';

export interface SelfCheck {
  name: string;
  seqlensQ: number[];
  seqlensK: number[];
  heads: [number, number];
  dims: [number, number];
  dtype: DType;
  options?: AttentionOptions;
}

const c = (name: string, seqlensQ: number[], seqlensK: number[], o: Partial<SelfCheck> = {}): SelfCheck => ({
  name,
  seqlensQ,
  seqlensK,
  heads: [4, 4],
  dims: [64, 64],
  dtype: 'float32',
  ...o,
});

export const SELF_CHECKS: readonly SelfCheck[] = [
  c('Lq=10 Lk=20 causal', [10], [20], { options: { causal: true } }),
  c('Lq=20 Lk=10 causal (rows that see no key)', [20], [10], { options: { causal: true } }),
  c('packed Lq=1,37,128 Lk=300,37,0', [1, 37, 128], [300, 37, 0], { options: { causal: true } }),
  c('sliding window [16, 4]', [96], [160], { options: { window: [16, 4] } }),
  c('grouped heads 8/2, d=128', [33], [70], { heads: [8, 2], dims: [128, 128], options: { causal: true } }),
  c('head dims 40 / 24', [17], [29], { dims: [40, 24] }),
  c('d=256', [9], [40], { dims: [256, 256], options: { causal: true } }),
  c('softcap 5, scale 0.3', [31], [31], { options: { softcap: 5, softmaxScale: 0.3 } }),
  c('ALiBi', [25], [50], { options: { alibiSlopes: [0.5, 0.25, 0.125, 0.0625], causal: true } }),
  c('decode 32/8 heads, 1 x 2000', [1, 1], [2000, 700], { heads: [32, 8], dims: [128, 128] }),
  c('float16', [45], [45], { dtype: 'float16', options: { causal: true } }),
  c('bfloat16', [45], [90], { dtype: 'bfloat16', options: { window: [20, 0] } }),
  c('attention sinks (and a sequence with no key)', [12, 3], [40, 0], {
    options: { sinks: [0.5, -1, 2, 0], causal: true },
  }),
];

/** The relative norm bound of half-precision results (docs/semantics.md "Accuracy"). */
const HALF_BOUND: Record<DType, number> = { float32: 0, float16: 2e-3, bfloat16: 1e-2 };

const prefix = (lens: number[]) =>
  Int32Array.from([0, ...lens.map((_, i) => lens.slice(0, i + 1).reduce((a, b) => a + b, 0))]);

export interface SelfCheckInputs {
  q: Tensor;
  k: Tensor;
  v: Tensor;
  options: VarlenOptions;
}

/** The check's seeded inputs, rounded to its dtype. */
export function selfCheckInputs(s: SelfCheck, seed: number): SelfCheckInputs {
  const next = rng(seed);
  const cuSeqlensQ = prefix(s.seqlensQ),
    cuSeqlensK = prefix(s.seqlensK);
  const tq = cuSeqlensQ[cuSeqlensQ.length - 1]!,
    tk = cuSeqlensK[cuSeqlensK.length - 1]!;
  const [h, hk] = s.heads,
    [d, dv] = s.dims;
  const t = (n: number, shape: number[]): Tensor => {
    const data = randn(next, n);
    return s.dtype === 'float32'
      ? { data, shape, dtype: 'float32' }
      : { data: encode(data, s.dtype), shape, dtype: s.dtype };
  };
  return {
    q: t(tq * h * d, [tq, h, d]),
    k: t(tk * hk * d, [tk, hk, d]),
    v: t(tk * hk * dv, [tk, hk, dv]),
    options: { cuSeqlensQ, cuSeqlensK, returnLse: true, ...s.options },
  };
}

/** The dtype an engine computes float32 inputs in (the cuda engine says so in `info.float32Compute`). */
function computeDtype(engine: Engine, dtype: DType): DType {
  const f = engine.info['float32Compute'];
  return dtype === 'float32' && (f === 'float16' || f === 'bfloat16') ? f : dtype;
}

export interface SelfCheckResult {
  name: string;
  ok: boolean;
  detail: string;
  skipped?: string;
}

const values = (t: Tensor) => decode(t.data, t.dtype);

/** Runs one check on an engine (through device tensors when `device`), against the float64 reference. */
export async function runSelfCheck(
  engine: Engine,
  s: SelfCheck,
  seed: number,
  device = false,
): Promise<SelfCheckResult> {
  const x = selfCheckInputs(s, seed);
  const why = engine.supports(x.q, x.k, x.v, x.options);
  if (why !== null) return { name: s.name, ok: true, detail: '', skipped: why };
  const cd = computeDtype(engine, s.dtype);
  // The reference sees the values the engine computes with.
  const rounded = (t: Tensor): TensorInput =>
    cd === s.dtype ? t : { data: encode(t.data as Float32Array, cd), shape: t.shape, dtype: cd };
  const ref = referenceAttentionVarlen(rounded(x.q), rounded(x.k), rounded(x.v), x.options);
  const { out, lse } = device ? await viaDevice(engine, x) : await engine.attentionVarlen(x.q, x.k, x.v, x.options);
  const o = values(out),
    r = ref.out64;
  let num = 0,
    den = 0,
    worst = 0;
  for (let i = 0; i < r.length; i++) {
    const e = o[i]! - r[i]!;
    num += e * e;
    den += r[i]! * r[i]!;
    worst = Math.max(worst, Number.isNaN(e) ? Infinity : Math.abs(e) / Math.max(1, Math.abs(r[i]!)));
  }
  const lseOk =
    lse !== undefined &&
    (lse.data as Float32Array).every(
      (y, i) => y === ref.lse64[i] || Math.abs(y - ref.lse64[i]!) <= 1e-3 * Math.max(1, Math.abs(ref.lse64[i]!)),
    );
  const rel = den > 0 ? Math.sqrt(num / den) : Math.sqrt(num);
  const shapeOk = out.shape.join() === [x.q.shape[0], s.heads[0], s.dims[1]].join() && out.dtype === s.dtype;
  const ok = (cd === 'float32' ? worst <= 1e-4 : rel <= HALF_BOUND[cd]) && lseOk && shapeOk;
  const detail =
    cd === 'float32'
      ? `max scaled error ${worst.toExponential(2)} (bound 1e-4)`
      : `relative error ${rel.toExponential(2)} (${cd}, bound ${HALF_BOUND[cd]})`;
  const problems = [
    lseOk ? '' : 'lse differs from the reference',
    shapeOk ? '' : `out is ${out.dtype} [${out.shape}]`,
  ].filter(Boolean);
  return { name: s.name, ok, detail: [detail, ...problems].join('; ') };
}

async function viaDevice(engine: Engine, x: SelfCheckInputs): Promise<{ out: Tensor; lse?: Tensor }> {
  const [q, k, v] = await Promise.all([engine.upload(x.q), engine.upload(x.k), engine.upload(x.v)]);
  try {
    const r = await engine.attentionVarlen(q, k, v, x.options);
    const host = async (t: Tensor | { location: string; dispose(): void }) =>
      'data' in t ? t : engine.download(t as never);
    const out = await host(r.out),
      lse = r.lse ? await host(r.lse) : undefined;
    for (const t of [r.out, r.lse]) if (t && !('data' in t)) t.dispose();
    return { out, lse };
  } finally {
    q.dispose();
    k.dispose();
    v.dispose();
  }
}

/** Two engines on the same inputs: their outputs within the looser engine's bound of each other. */
export async function compareEngines(a: Engine, b: Engine, s: SelfCheck, seed: number): Promise<SelfCheckResult> {
  const x = selfCheckInputs(s, seed);
  if (a.supports(x.q, x.k, x.v, x.options) !== null || b.supports(x.q, x.k, x.v, x.options) !== null)
    return { name: s.name, ok: true, detail: '', skipped: 'not supported by both' };
  const [ra, rb] = [
    await a.attentionVarlen(x.q, x.k, x.v, x.options),
    await b.attentionVarlen(x.q, x.k, x.v, x.options),
  ];
  const oa = values(ra.out),
    ob = values(rb.out);
  let num = 0,
    den = 0;
  for (let i = 0; i < oa.length; i++) {
    num += (oa[i]! - ob[i]!) ** 2;
    den += ob[i]! ** 2;
  }
  const rel = Math.sqrt(num / Math.max(den, 1e-300));
  const bound = 2 * Math.max(HALF_BOUND[computeDtype(a, s.dtype)], HALF_BOUND[computeDtype(b, s.dtype)], 1e-5);
  return { name: s.name, ok: rel <= bound, detail: `relative difference ${rel.toExponential(2)} (bound ${bound})` };
}

const bad = (shape: number[]): Tensor => ({
  data: new Float32Array(shape.reduce((m, n) => m * n, 1)),
  shape,
  dtype: 'float32',
});
const bq = bad([6, 4, 8]),
  bk = bad([9, 2, 8]);
const bo = (o: Partial<VarlenOptions> = {}): VarlenOptions => ({
  cuSeqlensQ: Int32Array.of(0, 2, 6),
  cuSeqlensK: Int32Array.of(0, 4, 9),
  ...o,
});

/** Bad calls every engine must reject before any work, with the same class and words. */
export const BAD_CALLS: readonly [string, (e: Engine) => Promise<unknown>][] = [
  ['q not a tensor', (e) => e.attentionVarlen(null as never, bk, bk, bo())],
  ['wrong rank', (e) => e.attentionVarlen(bad([6, 32]), bk, bk, bo())],
  ['heads not a multiple', (e) => e.attentionVarlen(bad([6, 3, 8]), bk, bk, bo())],
  ['cuSeqlens decreasing', (e) => e.attentionVarlen(bq, bk, bk, bo({ cuSeqlensK: Int32Array.of(0, 5, 4, 9) }))],
  ['window', (e) => e.attentionVarlen(bq, bk, bk, bo({ window: [-2, 0] }))],
  ['softcap', (e) => e.attentionVarlen(bq, bk, bk, bo({ softcap: -1 }))],
];

/** A bad call on an engine: its error, or null when it was (wrongly) accepted. */
export async function badCallError(e: Engine, call: (e: Engine) => Promise<unknown>): Promise<Error | null> {
  return call(e).then(
    () => null,
    (x: unknown) => x as Error,
  );
}
