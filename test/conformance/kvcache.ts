/**
 * Runs a KV cache conformance case (kvcache-cases.ts) on an engine, without a test framework (it runs in
 * Node and inside a browser page): a fresh cache loaded with the scenario's contents, one call with outputs
 * poisoned, out and lse against referenceAttentionWithKvCache under docs/semantics.md's bounds, out and lse
 * bit for bit against the same engine's attentionVarlen on the keys laid end to end (the same kernel, only
 * the rows' addresses differ), and the cache's contents after the call (engine.download) bit for bit
 * against the reference's.
 */
import { decode, encode } from '../../src/half.js';
import { setKnobs } from '../../src/knobs.js';
import { referenceAttentionWithKvCache } from '../../src/kvcache/reference.js';
import type { KvCache } from '../../src/kvcache/types.js';
import type { DType, Engine, InputTensor, Tensor } from '../../src/types.js';
import { type Case, type Scenario, callOptions, scenario } from '../kvcache-helpers.js';
import { computeDtype } from './run.js';

const bytes = (t: { data: ArrayBufferView }) => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
/** Index of the first differing byte, -1 if none (vitest's deep equality is slow on large arrays). */
export function firstDiff(a: { data: ArrayBufferView }, b: { data: ArrayBufferView }): number {
  const x = bytes(a),
    y = bytes(b);
  if (x.length !== y.length) return Math.min(x.length, y.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return i;
  return -1;
}

/** FNV-1a of a tensor's bytes, with its length: equal digests on two engines mean the same bits (to 2^-32). */
export function digest(t: { data: ArrayBufferView }): string {
  let h = 0x811c9dc5;
  for (const b of bytes(t)) h = Math.imul(h ^ b, 0x01000193);
  return `${t.data.byteLength}:${(h >>> 0).toString(16).padStart(8, '0')}`;
}

/** A cache of `e` with the scenario's dims, holding `contents` (every row of the pool, by writeKvCache). */
export async function loadKvCache(e: Engine, s: Scenario, contents = s.cache): Promise<KvCache> {
  const cache = await e.createKvCache({
    numBlocks: s.numBlocks,
    blockSize: s.blockSize,
    numKvHeads: s.numKvHeads,
    headDim: s.headDim,
    headDimV: s.headDimV,
    dtype: s.dtype,
  });
  // One sequence per block, each writing its block's rows from 0: every row once.
  const rows = s.numBlocks * s.blockSize;
  const rowsOf = (t: Tensor, d: number): Tensor => ({ ...t, shape: [rows, s.numKvHeads, d] });
  await e.writeKvCache(cache, rowsOf(contents.k, s.headDim), rowsOf(contents.v, s.headDimV), {
    cacheSeqlens: new Int32Array(s.numBlocks),
    blockTable: Int32Array.from({ length: s.numBlocks }, (_, b) => b),
    cuSeqlensNew: Int32Array.from({ length: s.numBlocks + 1 }, (_, b) => b * s.blockSize),
  });
  return cache;
}

/**
 * Why `got` is not within docs/semantics.md's bounds of the float64 reference (null when it is): non-finite
 * exactly where the reference is, worst scaled error 1e-4 (float32), relative norm error 2e-3 / 1e-2 (halves).
 */
export function kvNearFailure(got: Tensor, ref64: Float64Array, what: string, bound: DType = got.dtype): string | null {
  const g = decode(got.data as Float32Array | Uint16Array, got.dtype);
  if (g.length !== ref64.length) return `${what}: ${g.length} elements, reference ${ref64.length}`;
  let num = 0,
    den = 0,
    worst = 0,
    at = -1;
  for (let i = 0; i < g.length; i++) {
    const r = ref64[i]!;
    if (!Number.isFinite(r)) {
      if (!Object.is(g[i], r)) return `${what}[${i}] = ${g[i]}, reference ${r}`;
      continue;
    }
    if (!Number.isFinite(g[i])) return `${what}[${i}] = ${g[i]} (reference ${r}): unwritten, or NaN leaked`;
    const e = Math.abs(g[i]! - r) / Math.max(1, Math.abs(r));
    if (e > worst) {
      worst = e;
      at = i;
    }
    num += (g[i]! - r) ** 2;
    den += r * r;
  }
  if (bound === 'float32')
    return worst <= 1e-4 ? null : `${what}: worst scaled error ${worst.toExponential(2)} at ${at} (bound 1e-4)`;
  const tol = bound === 'float16' ? 2e-3 : 1e-2;
  const rel = Math.sqrt(num / Math.max(den, 1e-300));
  return rel < tol ? null : `${what}: relative norm error ${rel.toExponential(2)} (bound ${tol})`;
}

export interface KvCaseResult {
  /** Empty when the case passed; else what failed, one line each. */
  failures: string[];
  out: Tensor;
  lse: Tensor;
  /** The cache's contents after the call. */
  k: Tensor;
  v: Tensor;
}

const same = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/** One KV case on a fresh cache of `e` (disposed after), every check of the module's header. */
export async function runKvCase(e: Engine, c: Case, seed: number): Promise<KvCaseResult> {
  const s = scenario({ seed, seqs: c.seqs, blockSize: c.blockSize, ...c.shape });
  const cache = await loadKvCache(e, s);
  try {
    const options = callOptions(c, s);
    const restore = setKnobs({ poisonOutputs: true });
    let r: Awaited<ReturnType<Engine['attentionWithKvCache']>>;
    let flat: Awaited<ReturnType<Engine['attentionVarlen']>>;
    try {
      r = await e.attentionWithKvCache(s.q, cache, options);
      const { cuSeqlensQ, cacheSeqlens: _c, blockTable: _t, kNew: _k, vNew: _v, cuSeqlensNew: _n, ...rest } = options;
      flat = await e.attentionVarlen(s.q, s.kAll, s.vAll, { ...rest, cuSeqlensQ, cuSeqlensK: s.cuSeqlensK });
    } finally {
      restore();
    }
    const ref = referenceAttentionWithKvCache(s.q, s.cache, options);
    // An engine that computes float32 inputs in halves (the cuda engine) is held to the half bound against
    // the reference on the rounded values it computes with; the cache's contents stay exact.
    const cd = computeDtype(e, s.dtype);
    const round = <T extends InputTensor | undefined>(t: T): T =>
      cd === s.dtype || !t ? t : ({ ...t, data: encode((t as Tensor).data as Float32Array, cd), dtype: cd } as T);
    const refOut =
      cd === s.dtype
        ? ref
        : referenceAttentionWithKvCache(
            round(s.q),
            { k: round(s.cache.k as Tensor), v: round(s.cache.v as Tensor) },
            { ...options, kNew: round(options.kNew), vNew: round(options.vNew) },
          );
    const out = r.out as Tensor,
      lse = r.lse as Tensor;
    const k = await e.download(cache.k),
      v = await e.download(cache.v);
    const failures: string[] = [];
    const check = (ok: boolean, what: string) => {
      if (!ok) failures.push(what);
    };
    const totalQ = s.q.shape[0]!;
    check(same(out.shape, [totalQ, s.numHeads, s.headDimV]), `out.shape [${out.shape}]`);
    check(out.dtype === s.dtype, `out.dtype ${out.dtype}, expected ${s.dtype}`);
    check(same(lse.shape, [s.numHeads, totalQ]), `lse.shape [${lse.shape}]`);
    for (const f of [kvNearFailure(out, refOut.out64, 'out', cd), kvNearFailure(lse, refOut.lse64!, 'lse', cd)])
      if (f) failures.push(f);
    const bits = (a: Tensor, b: Tensor, what: string) => {
      const i = firstDiff(a, b);
      check(i === -1, `${what}: first differing byte ${i}`);
    };
    bits(out, flat.out as Tensor, 'out vs attentionVarlen on the same keys');
    bits(lse, flat.lse as Tensor, 'lse vs attentionVarlen on the same keys');
    check(same(k.shape, [s.numBlocks, s.blockSize, s.numKvHeads, s.headDim]), `cache.k shape [${k.shape}]`);
    check(same(v.shape, [s.numBlocks, s.blockSize, s.numKvHeads, s.headDimV]), `cache.v shape [${v.shape}]`);
    bits(k, ref.cache.k, "cache.k after the call vs the reference's");
    bits(v, ref.cache.v, "cache.v after the call vs the reference's");
    bits(k, s.after.k, 'cache.k: every held row its key, the rest untouched');
    return { failures, out, lse, k, v };
  } finally {
    cache.dispose();
  }
}
