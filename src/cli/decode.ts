/**
 * `flashattn demo --decode`: a generation-shaped loop on the public API: a paged KV cache, a batch
 * of prompts prefilled at once, then one token per sequence per step, with tokens per second. The
 * attention inputs are random (there is no model here); the shapes are a 32/8-head, d128 layer.
 */
import { encode } from '../half.js';
import { KvBlocks } from '../kvcache/blocks.js';
import type { DType, Engine, Tensor } from '../types.js';
import { randn, rng } from './random.js';

export async function decodeDemo(engine: Engine, log: (s: string) => void, steps = 64): Promise<number> {
  const H = 32,
    Hk = 8,
    D = 128,
    blockSize = 16;
  const prompts = [700, 130, 1024, 513];
  const next = rng(2026);
  // Each engine's own format: the GPU computes in halves (a float32 cache would be gathered and converted
  // every step), the CPU reads float32 as fast as float16.
  const dtype: DType = engine.backend === 'cuda' ? 'bfloat16' : 'float32';
  const t = (rows: number, heads: number): Tensor => ({
    data: encode(randn(next, rows * heads * D), dtype),
    shape: [rows, heads, D],
    dtype,
  });
  const total = prompts.reduce((a, b) => a + b, 0);
  const numBlocks = prompts.reduce((n, p) => n + Math.ceil((p + steps) / blockSize), 0);
  const cache = await engine.createKvCache({ numBlocks, blockSize, numKvHeads: Hk, headDim: D, dtype });
  try {
    const blocks = new KvBlocks(cache);
    const seqs = prompts.map(() => blocks.addSequence());
    const cu = Int32Array.from([0, ...prompts.map((_, i) => prompts.slice(0, i + 1).reduce((a, b) => a + b, 0))]);
    log(
      `decode: ${prompts.length} sequences, prompts [${prompts.join(', ')}], ${H}/${Hk} heads, d ${D}, ${dtype}, blocks of ${blockSize} keys`,
    );
    let t0 = performance.now();
    await engine.attentionWithKvCache(t(total, H), cache, {
      ...blocks.batch(seqs, prompts),
      cuSeqlensQ: cu,
      kNew: t(total, Hk),
      vNew: t(total, Hk),
      causal: true,
    });
    const prefillMs = performance.now() - t0;
    log(
      `  prefill: ${total} tokens in ${prefillMs.toFixed(1)} ms (${((total / prefillMs) * 1e3).toFixed(0)} tokens/s)`,
    );
    const B = prompts.length;
    const one = Int32Array.from({ length: B + 1 }, (_, i) => i);
    t0 = performance.now();
    for (let s = 0; s < steps; s++) {
      await engine.attentionWithKvCache(t(B, H), cache, {
        ...blocks.batch(seqs, 1),
        cuSeqlensQ: one,
        kNew: t(B, Hk),
        vNew: t(B, Hk),
        causal: true,
      });
    }
    const stepMs = (performance.now() - t0) / steps;
    const keys = prompts.reduce((a, b) => a + b, 0) + B * steps;
    log(
      `  ${steps} decode steps: ${stepMs.toFixed(2)} ms a step, ${((B / stepMs) * 1e3).toFixed(0)} tokens/s (attention only, ${keys} keys cached at the end)`,
    );
    return 0;
  } finally {
    cache.dispose();
  }
}
