// float16 on the wasm engine's decode path reads K and V raw (assembly/simd.ts, h2fRaw: a half's bits shifted
// into float32 position are its value times 2^-112; the kernel scales Q or P by 2^112 instead, and converts a
// tile that holds an Inf or a NaN exactly). This puts every one of the 65536 half bit patterns through that
// path, K and V, and checks each against the host's reference conversion (src/half.ts): one decode row per
// sequence over one key, so that the output is the value row itself and the lse the one score. Needs
// `npm run build:wasm`.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { f16ToF32 } from '../src/half.js';
import { createEngine } from '../src/node.js';
import type { Engine, Tensor } from '../src/types.js';
import { firstDiff } from './wasm-helpers.js';

// 32 query heads over 8 kv heads (a decode item of 8 kv heads), head dim 4: 32 halves per key row
const H = 32,
  HK = 8,
  D = 4,
  SEQS = 65536 / (HK * D);
const ONE = 0x3c00;
const cu = Int32Array.from({ length: SEQS + 1 }, (_, i) => i);
const half = (data: Uint16Array, shape: number[]): Tensor => ({ data, shape, dtype: 'float16' });
const patterns = () => Uint16Array.from({ length: 65536 }, (_, i) => i);
/** Query head h of every sequence is the one-hot vector of dim h % 4: its score is one element of the key. */
const oneHot = () => {
  const q = new Uint16Array(SEQS * H * D);
  for (let s = 0; s < SEQS; s++) for (let h = 0; h < H; h++) q[(s * H + h) * D + (h % D)] = ONE;
  return q;
};
// scale 2^-10: |score| stays under the precision bound for every finite half, so none takes the float64 path
const SCALE = 2 ** -10;

describe('float16 loaded raw: every half bit pattern, K and V', () => {
  const engines = new Map<number, Engine>();
  beforeAll(async () => {
    for (const t of [1, 2]) engines.set(t, await createEngine({ backend: 'wasm', threads: t }));
  });
  afterAll(async () => {
    for (const e of engines.values()) await e.dispose();
  });
  const call = (e: Engine, q: Uint16Array, k: Uint16Array, v: Uint16Array) =>
    e.attentionVarlen(half(q, [SEQS, H, D]), half(k, [SEQS, HK, D]), half(v, [SEQS, HK, D]), {
      cuSeqlensQ: cu,
      cuSeqlensK: cu,
      softmaxScale: SCALE,
      returnLse: true,
    });

  it('V: the output is the value row (Inf and NaN kept)', async () => {
    const v = patterns();
    const [one, two] = [
      await call(engines.get(1)!, oneHot(), new Uint16Array(65536), v),
      await call(engines.get(2)!, oneHot(), new Uint16Array(65536), v),
    ];
    const out = one.out.data as Uint16Array;
    expect(firstDiff(two.out, one.out), '1 and 2 threads').toBe(-1);
    let bad = 0;
    for (let s = 0; s < SEQS && bad < 5; s++)
      for (let h = 0; h < H; h++)
        for (let d = 0; d < D; d++) {
          const want = v[(s * HK + Math.floor(h / (H / HK))) * D + d]!,
            got = out[(s * H + h) * D + d]!;
          // values, not bits: O starts at +0, so -0 comes out +0 (as in the reference)
          const ok = Number.isNaN(f16ToF32(want)) ? Number.isNaN(f16ToF32(got)) : f16ToF32(got) === f16ToF32(want);
          if (!ok) {
            bad++;
            expect
              .soft(got.toString(16), `pattern 0x${want.toString(16)} (sequence ${s}, head ${h})`)
              .toBe(want.toString(16));
          }
        }
    expect(bad).toBe(0);
  });

  it('K: the score of a one-hot query is the key element (Inf and NaN where the reference has them)', async () => {
    const k = patterns();
    const [one, two] = [
      await call(engines.get(1)!, oneHot(), k, new Uint16Array(65536)),
      await call(engines.get(2)!, oneHot(), k, new Uint16Array(65536)),
    ];
    expect(firstDiff(two.lse!, one.lse!), '1 and 2 threads').toBe(-1);
    const lse = one.lse!.data as Float32Array; // [H, SEQS]
    let bad = 0;
    for (let s = 0; s < SEQS && bad < 5; s++) {
      const row = Array.from({ length: HK * D }, (_, i) => f16ToF32(k[s * HK * D + i]!));
      for (let h = 0; h < H; h++) {
        const kv = Math.floor(h / (H / HK)),
          els = row.slice(kv * D, kv * D + D);
        // the reference's dot product: one-hot, so 0 * Inf and 0 * NaN make it NaN
        const want = SCALE * els.reduce((a, x, d) => a + (d === h % D ? x : 0 * x), 0),
          got = lse[h * SEQS + s]!;
        const ok = Number.isFinite(want)
          ? Math.abs(got - want) <= 1e-6 * Math.abs(want)
          : Object.is(Number.isNaN(want), Number.isNaN(got)) && (Number.isNaN(want) || got === want);
        if (!ok) {
          bad++;
          expect
            .soft(got, `key element 0x${k[s * HK * D + kv * D + (h % D)]!.toString(16)} (sequence ${s}, head ${h})`)
            .toBe(want);
        }
      }
    }
    expect(bad).toBe(0);
  });
});
