// The wasm KV cache tests' helpers: a cache loaded with a scenario's contents, one call checked against
// referenceAttentionWithKvCache (outputs, and the cache's contents after, bit for bit).
import { expect } from 'vitest';
import { decode } from '../src/half.js';
import { setKnobs } from '../src/knobs.js';
import { referenceAttentionWithKvCache } from '../src/kvcache/reference.js';
import type { KvCache } from '../src/kvcache/types.js';
import type { Engine, Tensor } from '../src/types.js';
import { type Case, type Scenario, callOptions, scenario } from './kvcache-helpers.js';

export type { Case } from './kvcache-helpers.js';
import { firstDiff } from './wasm-helpers.js';

/** A cache of `e` with the scenario's dims, holding `contents` (every row of the pool, by writeKvCache). */
export async function loadCache(e: Engine, s: Scenario, contents = s.cache): Promise<KvCache> {
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

/** out (and lse) within docs/semantics.md's bounds of the float64 reference; non-finite exactly where it is. */
export function expectNear(got: Tensor, ref64: Float64Array, what: string): void {
  const g = decode(got.data as Float32Array | Uint16Array, got.dtype);
  expect(g.length, `${what} length`).toBe(ref64.length);
  let num = 0,
    den = 0,
    worst = 0,
    at = -1;
  for (let i = 0; i < g.length; i++) {
    const r = ref64[i]!;
    if (!Number.isFinite(r)) {
      expect(g[i], `${what}[${i}]`).toBe(r);
      continue;
    }
    expect(Number.isFinite(g[i]), `${what}[${i}] = ${g[i]} (reference ${r}): unwritten, or NaN leaked`).toBe(true);
    const e = Math.abs(g[i]! - r) / Math.max(1, Math.abs(r));
    if (e > worst) {
      worst = e;
      at = i;
    }
    num += (g[i]! - r) ** 2;
    den += r * r;
  }
  if (got.dtype === 'float32') expect(worst, `${what}: worst scaled error at ${at}`).toBeLessThanOrEqual(1e-4);
  else {
    const bound = got.dtype === 'float16' ? 2e-3 : 1e-2;
    expect(Math.sqrt(num / Math.max(den, 1e-300)), `${what}: relative norm error`).toBeLessThan(bound);
  }
}

export interface Outcome {
  out: Tensor;
  lse: Tensor;
  k: Tensor;
  v: Tensor;
}

/**
 * One call of `c` on a fresh cache of `e` (outputs poisoned first): out and lse against the reference, the
 * cache's contents after it bit for bit against the reference's, and out/lse bit for bit against the same
 * engine's attentionVarlen on the keys laid end to end (the same kernel, only the rows' addresses differ).
 */
export async function runCase(e: Engine, c: Case, seed: number): Promise<Outcome> {
  const s = scenario({ seed, seqs: c.seqs, blockSize: c.blockSize, ...c.shape });
  const cache = await loadCache(e, s);
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
    const out = r.out as Tensor,
      lse = r.lse as Tensor;
    expect(out.shape).toEqual([s.q.shape[0], s.numHeads, s.headDimV]);
    expect(out.dtype).toBe(s.dtype);
    expect(lse.shape).toEqual([s.numHeads, s.q.shape[0]]);
    expectNear(out, ref.out64, 'out');
    expectNear(lse, ref.lse64!, 'lse');
    expect(firstDiff(out, flat.out as Tensor), 'out vs attentionVarlen on the same keys').toBe(-1);
    expect(firstDiff(lse, flat.lse as Tensor), 'lse vs attentionVarlen on the same keys').toBe(-1);
    const k = await e.download(cache.k),
      v = await e.download(cache.v);
    expect(k.shape).toEqual([s.numBlocks, s.blockSize, s.numKvHeads, s.headDim]);
    expect(v.shape).toEqual([s.numBlocks, s.blockSize, s.numKvHeads, s.headDimV]);
    expect(firstDiff(k, ref.cache.k), 'cache.k after the call').toBe(-1);
    expect(firstDiff(v, ref.cache.v), 'cache.v after the call').toBe(-1);
    expect(firstDiff(k, s.after.k), 'cache.k: every held row its key, the rest untouched').toBe(-1);
    return { out, lse, k, v };
  } finally {
    cache.dispose();
  }
}
