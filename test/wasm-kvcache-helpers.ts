// The wasm KV cache tests' helpers, as vitest assertions over test/conformance/kvcache.ts (which the browser
// tests run in the page too): a cache loaded with a scenario's contents, a result near the float64
// reference, and one case checked against referenceAttentionWithKvCache (outputs, and the cache's contents
// after, bit for bit).
import { expect } from 'vitest';
import type { Engine, Tensor } from '../src/types.js';
import { type KvCaseResult, kvNearFailure, loadKvCache, runKvCase } from './conformance/kvcache.js';
import type { Case } from './kvcache-helpers.js';

export type { Case } from './kvcache-helpers.js';

/** A cache of `e` with the scenario's dims, holding `contents` (every row of the pool, by writeKvCache). */
export const loadCache = loadKvCache;

/** out (and lse) within docs/semantics.md's bounds of the float64 reference; non-finite exactly where it is. */
export function expectNear(got: Tensor, ref64: Float64Array, what: string): void {
  expect(kvNearFailure(got, ref64, what)).toBeNull();
}

/**
 * One call of `c` on a fresh cache of `e` (outputs poisoned first): out and lse against the reference, the
 * cache's contents after it bit for bit against the reference's, and out/lse bit for bit against the same
 * engine's attentionVarlen on the keys laid end to end (the same kernel, only the rows' addresses differ).
 */
export async function runCase(e: Engine, c: Case, seed: number): Promise<KvCaseResult> {
  const r = await runKvCase(e, c, seed);
  expect(r.failures).toEqual([]);
  return r;
}
