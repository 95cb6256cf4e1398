/**
 * `flashattn demo --decode`: a generation-shaped loop on the public API: a paged KV cache, a batch
 * of prompts prefilled at once, then one token per sequence per step, with tokens per second. The
 * attention inputs are random (there is no model here); the shapes are a 32/8-head, d128 layer.
 */
import { encode } from '../half.js';
import { KvBlocks } from '../kvcache/blocks.js';
import type { DType, Engine, InputTensor, Tensor } from '../types.js';
import { randn, rng } from './random.js';

export async function decodeDemo(engine: Engine, log: (s: string) => void, steps = 64): Promise<number> {
  const H = 32,
    Hk = 8,
    D = 128,
    blockSize = 16;
  const prompts = [700, 130, 1024, 513];
  const next = rng(2026);
  // Each engine's fast format: halves on the GPU's tensor cores (float32 there is computed in float32, on the
  // CUDA cores), float32 on the CPU, which reads it as fast as float16.
  const dtype: DType = engine.backend === 'cuda' ? 'bfloat16' : 'float32';
  const t = (rows: number, heads: number): Tensor => ({
    data: encode(randn(next, rows * heads * D), dtype),
    shape: [rows, heads, D],
    dtype,
  });
  const total = prompts.reduce((a, b) => a + b, 0);
  const B = prompts.length;
  // Every input is made before the clock starts (and, on the GPU, put there: a server's q, k and v come out
  // of the model's projections on the device), so the times are the engine's attention calls alone.
  const place = async (x: Tensor): Promise<InputTensor> => (engine.backend === 'cuda' ? engine.upload(x) : x);
  const inputs = async (rows: number) => ({
    q: await place(t(rows, H)),
    k: await place(t(rows, Hk)),
    v: await place(t(rows, Hk)),
  });
  const prefillIn = await inputs(total);
  const stepIn = [];
  for (let s = 0; s < steps; s++) stepIn.push(await inputs(B));
  const numBlocks = prompts.reduce((n, p) => n + Math.ceil((p + steps) / blockSize), 0);
  const cache = await engine.createKvCache({ numBlocks, blockSize, numKvHeads: Hk, headDim: D, dtype });
  const free = (x: unknown) => {
    if (x && typeof x === 'object' && 'dispose' in x) (x as { dispose(): void }).dispose();
  };
  const done = () => (engine.synchronize ? engine.synchronize() : Promise.resolve());
  try {
    const blocks = new KvBlocks(cache);
    // One prefill-shaped and one decode-shaped call first, on a cache of their own: the first call of a
    // shape loads its kernel (and the engine's workers or CUDA context), which is not the loop's cost.
    const warm = await engine.createKvCache({ numBlocks: 16, blockSize, numKvHeads: Hk, headDim: D, dtype });
    try {
      const wb = new KvBlocks(warm);
      const ws = [wb.addSequence(), wb.addSequence()];
      for (const lens of [
        [64, 64],
        [1, 1],
      ]) {
        const n = lens[0]! + lens[1]!;
        await engine.attentionWithKvCache(t(n, H), warm, {
          ...wb.batch(ws, lens),
          cuSeqlensQ: Int32Array.of(0, lens[0]!, n),
          kNew: t(n, Hk),
          vNew: t(n, Hk),
          causal: true,
        });
      }
      await done();
    } finally {
      warm.dispose();
    }
    const seqs = prompts.map(() => blocks.addSequence());
    const cu = Int32Array.from([0, ...prompts.map((_, i) => prompts.slice(0, i + 1).reduce((a, b) => a + b, 0))]);
    log(
      `decode: ${B} sequences, prompts [${prompts.join(', ')}], ${H}/${Hk} heads, d ${D}, ${dtype}, blocks of ${blockSize} keys`,
    );
    let t0 = performance.now();
    await engine.attentionWithKvCache(prefillIn.q, cache, {
      ...blocks.batch(seqs, prompts),
      cuSeqlensQ: cu,
      kNew: prefillIn.k,
      vNew: prefillIn.v,
      causal: true,
    });
    await done();
    const prefillMs = performance.now() - t0;
    log(
      `  prefill: ${total} tokens in ${prefillMs.toFixed(2)} ms (${((total / prefillMs) * 1e3).toFixed(0)} tokens/s)`,
    );
    const one = Int32Array.from({ length: B + 1 }, (_, i) => i);
    t0 = performance.now();
    for (const x of stepIn) {
      const r = await engine.attentionWithKvCache(x.q, cache, {
        ...blocks.batch(seqs, 1),
        cuSeqlensQ: one,
        kNew: x.k,
        vNew: x.v,
        causal: true,
      });
      free(r.out); // (device results go back in stream order, after the kernels that write them)
    }
    await done();
    const stepMs = (performance.now() - t0) / steps;
    const keys = total + B * steps;
    const where = engine.backend === 'cuda' ? 'inputs already on the GPU' : 'inputs in host memory';
    log(
      `  ${steps} decode steps: ${stepMs.toFixed(3)} ms a step, ${((B / stepMs) * 1e3).toFixed(0)} tokens/s (attention only, ${where}; ${keys} keys cached at the end)`,
    );
    return 0;
  } finally {
    cache.dispose();
    for (const x of [prefillIn, ...stepIn]) for (const u of [x.q, x.k, x.v]) free(u);
  }
}
