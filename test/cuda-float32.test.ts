// float32 on the cuda engine: the default precision computes float32 inputs as float16 pairs on the
// tensor cores (cuda/split.cuh), to the contract's float32 bound. The shared conformance cases cover
// every option at unit scale (conformance.test.ts, and every kernel path in cuda-engine.test.ts); here:
// which kernel a call runs, and tensors far from unit scale (values beyond float16's range, tiny ones,
// scores that overflow exp), each checked against the float64 reference on seeded random inputs.
import { afterAll, describe, expect, it } from 'vitest';
import { cudaAddon } from '../src/cuda/backend.js';
import { referenceAttentionVarlen } from '../src/reference.js';
import type { Tensor, VarlenOptions } from '../src/types.js';
import { cudaEngineOrReason } from './cuda-helpers.js';
import { freshSeed, randn, rng } from './conformance/random.js';

const { engine, reason } = await cudaEngineOrReason('cuda float32 tests');
const gpu = engine !== null;
const seed = freshSeed();

afterAll(async () => {
  await engine?.dispose();
});

interface Shape {
  seqlensQ: number[];
  seqlensK: number[];
  heads: number;
  kvHeads: number;
  d: number;
  dv: number;
  options?: Partial<VarlenOptions>;
}

function problem(s: Shape, sd: number, scales: { q: number; k: number; v: number }) {
  const next = rng(sd);
  const totalQ = s.seqlensQ.reduce((a, b) => a + b, 0);
  const totalK = s.seqlensK.reduce((a, b) => a + b, 0);
  const cu = (l: number[]) => Int32Array.from([0, ...l.map((_, i) => l.slice(0, i + 1).reduce((a, b) => a + b, 0))]);
  const t = (rows: number, heads: number, d: number, scale: number): Tensor => ({
    data: randn(next, rows * heads * d, scale),
    shape: [rows, heads, d],
    dtype: 'float32',
  });
  return {
    q: t(totalQ, s.heads, s.d, scales.q),
    k: t(totalK, s.kvHeads, s.d, scales.k),
    v: t(totalK, s.kvHeads, s.dv, scales.v),
    options: {
      cuSeqlensQ: cu(s.seqlensQ),
      cuSeqlensK: cu(s.seqlensK),
      returnLse: true,
      softmaxScale: 1 / Math.sqrt(s.d),
      ...s.options,
    } as VarlenOptions,
  };
}

// The worst of |out - ref| / max(vScale, |ref|) (the contract's bound at V's scale) and of the lse's
// |lse - ref| / max(1, |ref|); -1 where finiteness differs.
function worstError(out: Float32Array, ref: Float64Array, vScale: number, lse: Float32Array, lseRef: Float64Array) {
  let worst = 0;
  for (let i = 0; i < ref.length; i++) {
    if (Number.isFinite(out[i]) !== Number.isFinite(ref[i])) return -1;
    if (Number.isFinite(ref[i]))
      worst = Math.max(worst, Math.abs(out[i]! - ref[i]!) / Math.max(vScale, Math.abs(ref[i]!)));
  }
  for (let i = 0; i < lseRef.length; i++) {
    if (Number.isFinite(lse[i]) !== Number.isFinite(lseRef[i])) return -1;
    if (Number.isFinite(lseRef[i]))
      worst = Math.max(worst, Math.abs(lse[i]! - lseRef[i]!) / Math.max(1, Math.abs(lseRef[i]!)));
  }
  return worst;
}

const shapes: Record<string, Shape> = {
  'd128 causal 300 x 300, 4 heads': {
    seqlensQ: [300],
    seqlensK: [300],
    heads: 4,
    kvHeads: 4,
    d: 128,
    dv: 128,
    options: { causal: true },
  },
  'd64 full, two sequences Lq != Lk': { seqlensQ: [70, 129], seqlensK: [200, 65], heads: 2, kvHeads: 2, d: 64, dv: 64 },
  'd96/40 GQA 8/2 window': {
    seqlensQ: [150],
    seqlensK: [180],
    heads: 8,
    kvHeads: 2,
    d: 96,
    dv: 40,
    options: { window: [50, 10] },
  },
  'd128 64 queries x 16k keys (a long P V sum)': {
    seqlensQ: [64],
    seqlensK: [16384],
    heads: 2,
    kvHeads: 2,
    d: 128,
    dv: 128,
  },
  'decode d256, 16 rows': { seqlensQ: [1, 1], seqlensK: [900, 333], heads: 8, kvHeads: 1, d: 256, dv: 256 },
  // The kernels' general copy (on sm_90 the Hopper kernel's): softcap with ALiBi, a negative scale.
  'd128 causal GQA 8/2, softcap 30 and ALiBi': {
    seqlensQ: [260, 40],
    seqlensK: [700, 40],
    heads: 8,
    kvHeads: 2,
    d: 128,
    dv: 128,
    options: {
      causal: true,
      softcap: 30,
      alibiSlopes: Float32Array.from({ length: 8 }, (_, h) => 2 ** -(h + 1)),
    },
  },
  'd64 full 200 x 500, negative scale': {
    seqlensQ: [200],
    seqlensK: [500],
    heads: 2,
    kvHeads: 2,
    d: 64,
    dv: 64,
    options: { softmaxScale: -0.125 },
  },
};

// Scales: unit; beyond float16's range (q 1e5 with k 1e-5 keeps the scores at unit scale); tiny values
// (below float16's normal range); a V of 1e6; and scores large enough to overflow exp (q x 30).
const scaleSets = {
  unit: { q: 1, k: 1, v: 1 },
  'q 1e5, k 1e-5': { q: 1e5, k: 1e-5, v: 1 },
  'q 1e-6, k 1e6, v 1e-7': { q: 1e-6, k: 1e6, v: 1e-7 },
  'v 1e6': { q: 1, k: 1, v: 1e6 },
  'scores to 300': { q: 30, k: 1, v: 1 },
};

describe.skipIf(!gpu)(`cuda float32 ${gpu ? '' : `(skipped: ${reason})`}`, () => {
  it('runs float32 calls on the float16 pairs kernel; precision float16 on the half kernels', async () => {
    const addon = cudaAddon()!;
    const attention = addon.attention;
    const plans: { split: boolean }[] = [];
    addon.attention = ((...args: Parameters<typeof attention>) => {
      const r = attention.apply(addon, args) as unknown;
      plans.push(addon.lastPlan(args[0]));
      return r;
    }) as typeof attention;
    try {
      const x = problem(shapes['d64 full, two sequences Lq != Lk']!, seed, scaleSets.unit);
      await engine!.attentionVarlen(x.q, x.k, x.v, x.options);
      await engine!.attentionVarlen(x.q, x.k, x.v, { ...x.options, precision: 'float16' });
    } finally {
      addon.attention = attention;
    }
    expect(plans.map((p) => p.split)).toEqual([true, false]);
  });

  // An infinity in q or k: a score of +-inf, as in float32 (-inf drops the key, +inf makes the row NaN),
  // never NaN from one of the pairs' products; an infinity in v reaches exactly the rows that see it.
  for (const [input, value] of [
    ['k', Number.POSITIVE_INFINITY],
    ['k', Number.NEGATIVE_INFINITY],
    ['q', Number.POSITIVE_INFINITY],
    ['v', Number.NEGATIVE_INFINITY],
  ] as const)
    it(`${value} in ${input}: non-finite exactly where the reference is (seed ${seed})`, async () => {
      const x = problem(shapes['d128 causal 300 x 300, 4 heads']!, seed, scaleSets.unit);
      const t = x[input].data as Float32Array;
      const d = 128;
      for (const row of [5, 77, 290]) t[row * 4 * d + 3] = value; // head 0, element 3
      const ref = referenceAttentionVarlen(x.q, x.k, x.v, x.options);
      const r = await engine!.attentionVarlen(x.q, x.k, x.v, x.options);
      const err = worstError(r.out.data as Float32Array, ref.out64, 1, r.lse!.data as Float32Array, ref.lse64!);
      expect(err, `finiteness differs from the reference (seed ${seed})`).toBeGreaterThanOrEqual(0);
      expect(err).toBeLessThan(1e-4);
    });

  for (const [name, s] of Object.entries(shapes))
    for (const [scaleName, scales] of Object.entries(scaleSets))
      it(`${name}, ${scaleName}: within the float32 bound (seed ${seed})`, async () => {
        const x = problem(s, seed, scales);
        const ref = referenceAttentionVarlen(x.q, x.k, x.v, x.options);
        const r = await engine!.attentionVarlen(x.q, x.k, x.v, x.options);
        expect(r.out.dtype).toBe('float32');
        const err = worstError(
          r.out.data as Float32Array,
          ref.out64,
          scales.v,
          r.lse!.data as Float32Array,
          ref.lse64!,
        );
        expect(err, `worst scaled error (seed ${seed})`).toBeGreaterThanOrEqual(0);
        expect(err, `worst scaled error (seed ${seed})`).toBeLessThan(1e-4);
      });
});
