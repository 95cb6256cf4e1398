/** `flashattn demo` (= npm start): the classic bottom-right causal picture, a check, and a timed packed batch. */
import { randn, rng } from '../conformance/random.js';
import { createEngine } from '../node.js';
import { attentionFlops } from '../problem.js';
import { referenceAttentionVarlen } from '../reference.js';
import { tensor } from '../tensor.js';
import { validateVarlen } from '../validate.js';
import { engineFlags, parseFlags } from './args.js';
import { maskPicture } from './picture.js';

const cumsum = (lens: number[]) => Int32Array.from([0, ...lens.map((_, i) => lens.slice(0, i + 1).reduce((a, b) => a + b, 0))]);

export async function demo(args: string[], log: (s: string) => void): Promise<number> {
  const engine = await createEngine(engineFlags(parseFlags(args)));
  try {
    log(`flashattn demo on the ${engine.backend} engine (${engine.threads} thread${engine.threads > 1 ? 's' : ''})` +
      (engine.fallbackReason ? `\n  not cuda because ${engine.fallbackReason}` : ''));
    log('');
    log('10 queries, 20 keys, causal: masks are aligned bottom-right, so the last query sees the last key.');
    for (const l of maskPicture(10, 20, -1, 0)) log(l);

    const next = rng(2026);
    const H = 4, D = 64;
    const q = tensor(randn(next, 10 * H * D), [10, H, D]);
    const k = tensor(randn(next, 20 * H * D), [20, H, D]);
    const v = tensor(randn(next, 20 * H * D), [20, H, D]);
    const opts = { cuSeqlensQ: Int32Array.of(0, 10), cuSeqlensK: Int32Array.of(0, 20), causal: true, returnLse: true };
    const got = await engine.attentionVarlen(q, k, v, opts);
    const ref = referenceAttentionVarlen(q, k, v, opts);
    let err = 0;
    const o = got.out.data as Float32Array;
    for (let i = 0; i < o.length; i++) err = Math.max(err, Math.abs(o[i]! - ref.out64[i]!));
    const ok = err <= 1e-4;
    log('');
    log(`check against the float64 reference (${H} heads, head dim ${D}): max abs error ${err.toExponential(2)} ${ok ? 'OK' : 'FAILED'}`);

    const lens = [37, 512, 129, 1024, 5, 300, 2048, 77];
    const total = lens.reduce((a, b) => a + b, 0);
    const Hb = 8;
    const cu = cumsum(lens);
    const qb = tensor(randn(next, total * Hb * D), [total, Hb, D]);
    const kb = tensor(randn(next, total * Hb * D), [total, Hb, D]);
    const vb = tensor(randn(next, total * Hb * D), [total, Hb, D]);
    const bopts = { cuSeqlensQ: cu, cuSeqlensK: cu, causal: true };
    const flops = attentionFlops(validateVarlen(qb, kb, vb, bopts));
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
    log(`packed batch of ${lens.length} sequences [${lens.join(', ')}] (${total} tokens), ${Hb} heads, head dim ${D}, causal:`);
    log(`  ${ms.toFixed(1)} ms (median of 5), ${(total / ms * 1e3).toFixed(0)} tokens/s, ${(flops / ms / 1e6).toFixed(1)} GFLOP/s`);
    return ok ? 0 : 1;
  } finally {
    await engine.dispose();
  }
}
