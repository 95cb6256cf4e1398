/**
 * `flashattn doctor`'s KV cache check, through the public API: a paged cache of 16-row blocks holding three
 * sequences' histories (written with writeKvCache in scattered blocks), then one decode step that appends a
 * row per sequence and attends over each whole history (causal, grouped heads, sinks), against
 * referenceAttentionWithKvCache on the cache's contents before the step, and the cache's rows after it.
 */
import { decode, encode } from '../half.js';
import { referenceAttentionWithKvCache } from '../kvcache/reference.js';
import type { DType, Engine, Tensor } from '../types.js';
import { randn, rng } from './random.js';

export interface KvSelfCheckResult {
  name: string;
  ok: boolean;
  detail: string;
}

const BOUND: Record<DType, number> = { float32: 1e-4, float16: 2e-3, bfloat16: 1e-2 };

export async function runKvSelfCheck(engine: Engine, dtype: DType, seed: number): Promise<KvSelfCheckResult> {
  const name = `KV cache decode step (${dtype} cache, 16-row blocks)`;
  const [H, Hk, D, bs] = [8, 2, 64, 16];
  const lens = [37, 5, 70];
  const per = 8,
    numBlocks = lens.length * per + 3;
  const next = rng(seed);
  const t = (rows: number, heads: number): Tensor => ({
    data: encode(randn(next, rows * heads * D), dtype),
    shape: [rows, heads, D],
    dtype,
  });
  // Sequence b holds blocks numBlocks-1-b, numBlocks-1-b-3, ...: scattered, none shared.
  const blockTable = Int32Array.from(
    { length: lens.length * per },
    (_, i) => numBlocks - 1 - (i % per) * 3 - Math.floor(i / per),
  );
  const cache = await engine.createKvCache({ numBlocks, blockSize: bs, numKvHeads: Hk, headDim: D, dtype });
  try {
    const total = lens.reduce((a, b) => a + b, 0);
    const cu = (xs: number[]) =>
      Int32Array.from([0, ...xs.map((_, i) => xs.slice(0, i + 1).reduce((a, b) => a + b, 0))]);
    await engine.writeKvCache(cache, t(total, Hk), t(total, Hk), {
      cacheSeqlens: new Int32Array(lens.length),
      blockTable,
      cuSeqlensNew: cu(lens),
    });
    const before = { k: await engine.download(cache.k), v: await engine.download(cache.v) };
    const options = {
      cuSeqlensQ: cu([1, 1, 1]),
      cacheSeqlens: Int32Array.from(lens),
      blockTable,
      kNew: t(3, Hk),
      vNew: t(3, Hk),
      causal: true,
      sinks: [0.5, -1, 2, 0, 1, -0.5, 0.25, 3],
      returnLse: true,
    };
    const q = t(3, H);
    const ref = referenceAttentionWithKvCache(q, before, options);
    const r = await engine.attentionWithKvCache(q, cache, options);
    const out = decode((r.out as Tensor).data as Float32Array | Uint16Array, dtype);
    // float32 on an engine that says it computes float32 inputs in a half type (engine.info.float32Compute;
    // none does by default since float32 means float32): that type's bound, as the conformance suite does.
    const f = engine.info['float32Compute'];
    const cd: DType = dtype === 'float32' && (f === 'float16' || f === 'bfloat16') ? f : dtype;
    let num = 0,
      den = 0,
      worst = 0;
    for (let i = 0; i < out.length; i++) {
      const e = out[i]! - ref.out64[i]!;
      num += e * e;
      den += ref.out64[i]! ** 2;
      worst = Math.max(worst, Number.isNaN(e) ? Infinity : Math.abs(e) / Math.max(1, Math.abs(ref.out64[i]!)));
    }
    const err = cd === 'float32' ? worst : Math.sqrt(num / den);
    const after = await engine.download(cache.k);
    const same = new Uint8Array(after.data.buffer, after.data.byteOffset, after.data.byteLength).every(
      (x, i) => x === new Uint8Array(ref.cache.k.data.buffer, ref.cache.k.data.byteOffset)[i],
    );
    const ok = err <= BOUND[cd] && same;
    return {
      name,
      ok,
      detail: `${cd === 'float32' ? 'max scaled' : 'relative'} error ${err.toExponential(2)} (${cd}, bound ${BOUND[cd]})${same ? '' : '; the cache rows after the step differ from the reference'}`,
    };
  } finally {
    cache.dispose();
  }
}
