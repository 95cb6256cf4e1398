/**
 * The float64 reference of a KV cache call, written as docs/semantics.md says it: the new rows are written
 * into copies of the cache's contents first, then each sequence's keys are gathered through the block table
 * and the attention reference (src/reference.ts) runs on them as one attentionVarlen call.
 */
import type { Problem } from '../problem.js';
import { type ReferenceResult, referenceProblem } from '../reference.js';
import type { HostData, Tensor, TensorInput } from '../types.js';
import { MAX_ROWS } from './layout.js';
import type { KvWrite } from './problem.js';
import type { KvCacheCallOptions, KvCacheContents } from './types.js';
import { readKvCacheContents, validateKvCall } from './validate.js';

export interface KvReferenceResult extends ReferenceResult {
  /** The cache's contents after the call's write (new arrays; the inputs are not changed). */
  cache: { k: Tensor; v: Tensor };
}

/** Writes a validated problem's new rows into `k` and `v` (the cache's contents, row-major). */
function writeRows(p: KvWrite<Tensor, unknown>, k: HostData, v: HostData): void {
  const { blockSize: bs, numKvHeads: hk, headDim: d, headDimV: dv, maxBlocksPerSeq: m } = p;
  if (!p.kNew || !p.vNew) return;
  for (let b = 0; b < p.batch; b++) {
    const c = p.cacheSeqlens[b]!,
      r0 = p.cuSeqlensNew[b]!,
      n = p.cuSeqlensNew[b + 1]! - r0;
    for (let r = 0; r < n; r++) {
      const pos = c + r;
      const row = p.blockTable[b * m + Math.floor(pos / bs)]! * bs + (pos % bs);
      k.set(p.kNew.data.subarray((r0 + r) * hk * d, (r0 + r + 1) * hk * d), row * hk * d);
      v.set(p.vNew.data.subarray((r0 + r) * hk * dv, (r0 + r + 1) * hk * dv), row * hk * dv);
    }
  }
}

/** Each sequence's keys (and values) `0 .. Lk - 1`, read through the block table and laid end to end. */
function gather(p: KvWrite<Tensor, unknown>, src: HostData, width: number): { data: HostData; cu: Int32Array } {
  const { blockSize: bs, maxBlocksPerSeq: m } = p;
  const cu = new Int32Array(p.batch + 1);
  let total = 0;
  for (let b = 0; b < p.batch; b++) {
    total += p.seqlensK[b]!;
    if (total > MAX_ROWS)
      throw new RangeError(
        `Expected at most ${MAX_ROWS} keys in all for the reference (it gathers every sequence's keys) for options.cacheSeqlens but received ${total}`,
      );
    cu[b + 1] = total;
  }
  const data = src instanceof Float32Array ? new Float32Array(total * width) : new Uint16Array(total * width);
  for (let b = 0; b < p.batch; b++)
    for (let pos = 0; pos < p.seqlensK[b]!; pos++) {
      const row = p.blockTable[b * m + Math.floor(pos / bs)]! * bs + (pos % bs);
      data.set(src.subarray(row * width, (row + 1) * width), (cu[b]! + pos) * width);
    }
  return { data, cu };
}

/**
 * The float64 reference of `engine.attentionWithKvCache(q, cache, options)` on the cache's host contents
 * (`{ k: await engine.download(cache.k), v: await engine.download(cache.v) }`): the same validation as the
 * engines (but host tensors only), then the write into copies, then attention of each sequence's queries over
 * its `Lk = c + n` keys. Results as `referenceAttentionVarlen`'s (float32 `out`, `lse` with `returnLse`, and
 * the float64 arrays they were rounded from), plus the cache's contents after the write.
 */
export function referenceAttentionWithKvCache(
  q: TensorInput,
  cache: KvCacheContents,
  options: KvCacheCallOptions,
): KvReferenceResult {
  const view = readKvCacheContents(cache);
  const kp = validateKvCall(view, q, options) as unknown as Omit<Problem<Tensor>, 'k' | 'v'> & KvWrite<Tensor, unknown>;
  const { numKvHeads: hk, headDim: d, headDimV: dv, dtype } = kp;
  const k = view.cache.k.data.slice(),
    v = view.cache.v.data.slice();
  writeRows(kp, k, v);
  const gk = gather(kp, k, hk * d),
    gv = gather(kp, v, hk * dv);
  const totalK = gk.cu[kp.batch]!;
  const p: Problem<Tensor> = {
    ...kp,
    k: { data: gk.data, shape: [totalK, hk, d], dtype },
    v: { data: gv.data, shape: [totalK, hk, dv], dtype },
    cuSeqlensK: gk.cu,
    totalK,
  };
  const r = referenceProblem(p);
  return {
    out: { data: Float32Array.from(r.out), shape: p.outShape, dtype: 'float32' },
    lse: p.returnLse ? { data: Float32Array.from(r.lse), shape: p.lseShape, dtype: 'float32' } : undefined,
    out64: r.out,
    lse64: r.lse,
    cache: { k: { ...view.cache.k, data: k }, v: { ...view.cache.v, data: v } },
  };
}
