/** `flashattn demo` (= npm start): the classic bottom-right causal picture, a check, and a timed packed batch. */
import { attentionFlops } from '../flops.js';
import { createEngine } from '../node.js';
import { encode } from '../half.js';
import { tensor } from '../tensor.js';
import type { DType } from '../types.js';
import { type CommandSpec, type Values, flag } from './args.js';
import { decodeDemo } from './decode.js';
import { maskPicture } from './picture.js';
import { randn, rng } from './random.js';
import { SELF_CHECKS, runSelfCheck } from './selfcheck.js';

const cumsum = (lens: number[]) =>
  Int32Array.from([0, ...lens.map((_, i) => lens.slice(0, i + 1).reduce((a, b) => a + b, 0))]);

const flags = {
  backend: flag.choice(['auto', 'wasm', 'cuda'] as const, 'the engine (default auto: cuda where it loads, else wasm)'),
  threads: flag.int('N', 'worker threads of the wasm engine (default: the cores)', 1),
  decode: flag.bool('a generation-shaped loop instead: a paged KV cache, a prefill, then decode steps, tokens/s'),
};

export const demoCommand: CommandSpec<typeof flags> = {
  name: 'demo',
  summary: 'the 10-query / 20-key causal picture, a check against the reference, a timed packed batch (npm start)',
  details: 'flashattn with no command runs it.',
  flags,
};

export async function demo(o: Values<typeof flags>, log: (s: string) => void): Promise<number> {
  const engine = await createEngine({ backend: o.backend, threads: o.threads });
  try {
    log(
      `flashattn demo on the ${engine.backend} engine (${engine.threads} thread${engine.threads > 1 ? 's' : ''})` +
        (engine.fallbackReason ? `\n  not cuda because ${engine.fallbackReason}` : ''),
    );
    log('');
    if (o.decode) return await decodeDemo(engine, log);
    log('10 queries, 20 keys, causal: masks are aligned bottom-right, so the last query sees the last key.');
    for (const l of maskPicture(10, 20, -1, 0)) log(l);

    // doctor's first self-check, in the precision this engine computes float32 in.
    const r = await runSelfCheck(engine, SELF_CHECKS[0]!, 2026);
    const ok = r.ok && !r.skipped;
    log('');
    log(`check against the float64 reference (4 heads, head dim 64): ${r.detail} ${ok ? 'OK' : 'FAILED'}`);

    const next = rng(2026);
    const D = 64;
    const lens = [37, 512, 129, 1024, 5, 300, 2048, 77];
    const total = lens.reduce((a, b) => a + b, 0);
    const Hb = 8;
    const cu = cumsum(lens);
    // In the engine's fast format: bfloat16 on the GPU (float32 there is computed in float32, on the
    // CUDA cores, unless the call asks for precision 'float16'), float32 on the CPU.
    const dtype: DType = engine.backend === 'cuda' ? 'bfloat16' : 'float32';
    const make = () => {
      const x = randn(next, total * Hb * D);
      return dtype === 'float32' ? tensor(x, [total, Hb, D]) : tensor(encode(x, dtype), [total, Hb, D], dtype);
    };
    const qb = make();
    const kb = make();
    const vb = make();
    const bopts = { cuSeqlensQ: cu, cuSeqlensK: cu, causal: true };
    const flops = attentionFlops(qb, kb, vb, bopts);
    await engine.attentionVarlen(qb, kb, vb, bopts);
    const times: number[] = [];
    for (let r = 0; r < 5; r++) {
      const t0 = performance.now();
      await engine.attentionVarlen(qb, kb, vb, bopts);
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    const ms = times[2]!;
    log('');
    log(
      `packed batch of ${lens.length} sequences [${lens.join(', ')}] (${total} tokens), ${Hb} heads, head dim ${D}, causal, ${dtype}:`,
    );
    const copies = engine.backend === 'cuda' ? ', host-to-device copies included' : '';
    log(
      `  ${ms.toFixed(1)} ms (median of 5${copies}), ${((total / ms) * 1e3).toFixed(0)} tokens/s, ${(flops / ms / 1e6).toFixed(1)} GFLOP/s`,
    );
    return ok ? 0 : 1;
  } finally {
    await engine.dispose();
  }
}
