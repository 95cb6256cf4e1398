/**
 * The decode workloads with their history in a paged KV cache (docs/semantics.md, "The KV cache (paged)"):
 * each sequence's first Lk - 1 keys are written once into a cache of 16-row blocks, scattered over the pool
 * (a shuffled block table); each timed call appends the last key (kNew, vNew: one row per sequence, written
 * at position Lk - 1 every time) and attends over all Lk keys, read through the table. A float32 cache is
 * checked as the other rows (1e-4 of the float64 reference), a float16 one (q, kNew, vNew float16 too) by the
 * relative norm bound 2e-3 against the reference on the same rounded inputs. GB/s counts the cache's bytes.
 */
import { decode, encode } from '../../half.js';
import type { KvCache, KvCacheCallOptions } from '../../kvcache/types.js';
import type { Problem } from '../../problem.js';
import { referenceProblem } from '../../reference.js';
import type { DType, Engine, Tensor } from '../../types.js';
import { rng } from '../random.js';
import { othersCores } from './interference.js';
import type { BenchRun, Prepared } from './run.js';
import { measure } from './timing.js';
import { type Check, checkAgainst } from './verify.js';
import type { Workload } from './workloads.js';

export const KV_BLOCK_SIZE = 16;
/** The cache variants measured on a workload with `kvCache`, with their result names. */
export const KV_VARIANTS: readonly { dtype: DType; impl: string; label: string }[] = [
  { dtype: 'float32', impl: 'flashattn (KV cache, bs 16)', label: 'KV cache f32' },
  { dtype: 'float16', impl: 'flashattn (KV cache f16, bs 16)', label: 'KV cache f16' },
];

/** Result lines the engine gives a workload per thread count (BenchRun.measureEngine). */
export const engineMeasurements = (w: Workload) => 1 + (w.residentKV ? 1 : 0) + (w.kvCache ? KV_VARIANTS.length : 0);

/** Relative norm error against the reference, as docs/semantics.md bounds half precision. */
function relativeNorm(out: Float64Array, ref: Float64Array, tol: number): Check {
  let num = 0,
    den = 0;
  for (let i = 0; i < ref.length; i++) {
    num += (out[i]! - ref[i]!) ** 2;
    den += ref[i]! ** 2;
  }
  const err = out.length === ref.length ? Math.sqrt(num / den) : Infinity;
  return { ok: err <= tol, maxErr: Number.isNaN(err) ? Infinity : err, worst: 'relative norm error' };
}

/** The workload's rows as `dtype` data. */
const rowsAs = (x: Float32Array, dtype: DType) => (dtype === 'float32' ? x : encode(x, dtype));

/**
 * A decode workload laid into a KV cache (bench/cpu/kv-ab.mjs uses it too): blocks of `bs` rows for every
 * sequence's Lk rows handed out in a shuffled order (seeded), the history (each sequence's first Lk - 1
 * rows, to write first) and the appended rows (its last, the call's kNew/vNew), from the workload's K, V.
 */
export function kvDecodeLayout(d: Prepared['d'], bs: number, seed: number) {
  const w = d.w,
    batch = w.seqlensK.length;
  const rowK = w.numKvHeads * w.headDim,
    rowV = w.numKvHeads * w.headDimV;
  const held = w.seqlensK.map((lk) => Math.ceil(lk / bs));
  const m = Math.max(...held),
    numBlocks = held.reduce((a, b) => a + b, 0);
  const ids = Array.from({ length: numBlocks }, (_, i) => i);
  const next = rng(seed);
  for (let i = ids.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [ids[i], ids[j]] = [ids[j]!, ids[i]!];
  }
  const blockTable = new Int32Array(batch * m).fill(-1);
  let taken = 0;
  held.forEach((n, b) => {
    for (let j = 0; j < n; j++) blockTable[b * m + j] = ids[taken++]!;
  });
  const cacheSeqlens = Int32Array.from(w.seqlensK, (lk) => lk - 1);
  const cuHistory = new Int32Array(batch + 1),
    cuNew = Int32Array.from({ length: batch + 1 }, (_, b) => b);
  const histK = new Float32Array((d.totalK - batch) * rowK),
    histV = new Float32Array((d.totalK - batch) * rowV);
  const lastK = new Float32Array(batch * rowK),
    lastV = new Float32Array(batch * rowV);
  for (let b = 0; b < batch; b++) {
    const k0 = d.cuSeqlensK[b]!,
      c = cacheSeqlens[b]!;
    cuHistory[b + 1] = cuHistory[b]! + c;
    histK.set(d.k.subarray(k0 * rowK, (k0 + c) * rowK), cuHistory[b]! * rowK);
    histV.set(d.v.subarray(k0 * rowV, (k0 + c) * rowV), cuHistory[b]! * rowV);
    lastK.set(d.k.subarray((k0 + c) * rowK, (k0 + c + 1) * rowK), b * rowK);
    lastV.set(d.v.subarray((k0 + c) * rowV, (k0 + c + 1) * rowV), b * rowV);
  }
  return { numBlocks, blockTable, cacheSeqlens, cuHistory, cuNew, histK, histV, lastK, lastV };
}

/**
 * A cache of `e` in `dtype` holding the layout's history (one writeKvCache), and the options of the decode
 * call that appends each sequence's last row and attends (q is the caller's).
 */
export async function loadDecodeCache(
  e: Engine,
  d: Prepared['d'],
  layout: ReturnType<typeof kvDecodeLayout>,
  bs: number,
  dtype: DType,
): Promise<{ cache: KvCache; options: KvCacheCallOptions }> {
  const w = d.w,
    batch = w.seqlensK.length;
  const T = (x: Float32Array, shape: number[]): Tensor => ({ data: rowsAs(x, dtype), shape, dtype });
  const cache = await e.createKvCache({
    numBlocks: layout.numBlocks,
    blockSize: bs,
    numKvHeads: w.numKvHeads,
    headDim: w.headDim,
    headDimV: w.headDimV,
    dtype,
  });
  await e.writeKvCache(
    cache,
    T(layout.histK, [d.totalK - batch, w.numKvHeads, w.headDim]),
    T(layout.histV, [d.totalK - batch, w.numKvHeads, w.headDimV]),
    { cacheSeqlens: new Int32Array(batch), blockTable: layout.blockTable, cuSeqlensNew: layout.cuHistory },
  );
  const options: KvCacheCallOptions = {
    cuSeqlensQ: d.cuSeqlensQ,
    cacheSeqlens: layout.cacheSeqlens,
    blockTable: layout.blockTable,
    kNew: T(layout.lastK, [batch, w.numKvHeads, w.headDim]),
    vNew: T(layout.lastV, [batch, w.numKvHeads, w.headDimV]),
    cuSeqlensNew: layout.cuNew,
    causal: w.causal,
  };
  return { cache, options };
}

/** The decode workload of `p` on a KV cache of each variant, at `t` threads. */
export async function measureKvCache(run: BenchRun, e: Engine, p: Prepared, t: number): Promise<void> {
  const { d } = p;
  const w = d.w,
    bs = KV_BLOCK_SIZE;
  const layout = kvDecodeLayout(d, bs, run.opt.seed);
  const tag = `  ${w.id} ${t}t `;
  for (const { dtype, impl, label: name } of KV_VARIANTS) {
    const label = `${tag}${`  ${name}`.padEnd(17)}`;
    const T = (x: Float32Array, shape: number[]): Tensor => ({ data: rowsAs(x, dtype), shape, dtype });
    let cache: KvCache | null = null;
    try {
      const loaded = await loadDecodeCache(e, d, layout, bs, dtype);
      const kv = (cache = loaded.cache);
      const { options } = loaded;
      const q = T(d.q, [d.totalQ, w.numHeads, w.headDim]);
      // the reference on the values the engine computes with (halves: the rounded inputs)
      let ref = p.ref;
      if (dtype !== 'float32') {
        const round = (x: Float32Array, shape: number[]) => T(x, shape);
        const rp: Problem<Tensor> = {
          ...d.problem,
          dtype,
          q,
          k: round(d.k, [d.totalK, w.numKvHeads, w.headDim]),
          v: round(d.v, [d.totalK, w.numKvHeads, w.headDimV]),
        };
        ref = referenceProblem(rp).out;
      }
      const r = await run.steady(async () => {
        const others = othersCores();
        const { timing, result } = await measure(() => e.attentionWithKvCache(q, kv, options), run.policy);
        const out = result.out as Tensor;
        const check =
          dtype === 'float32'
            ? checkAgainst(out.data as Float32Array, ref)
            : relativeNorm(decode(out.data, dtype), ref, 2e-3);
        const res = run.result(
          d,
          impl,
          t,
          timing,
          check,
          others(),
          `KV cache ${dtype}, blockSize ${bs}, 1 row appended per call`,
        );
        if (res.gbps !== undefined && dtype !== 'float32') res.gbps /= 2;
        return res;
      }, label);
      run.record(r, d, label);
    } catch (err) {
      run.error(`${w.id} ${impl} ${t}t`, label, err);
    } finally {
      cache?.dispose();
    }
  }
}
