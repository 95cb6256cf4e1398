// Property-based fuzzing of the call boundary (fast-check): malformed calls made from valid ones.
// Each run takes a valid packed call, breaks one field in one way (wrong types, NaN / Infinity /
// -0 / fractions / huge values, views with offsets, SharedArrayBuffer, detached buffers, Proxies,
// throwing getters, unknown keys) and checks: a call that is still valid matches the float64
// reference; any other is a TypeError or RangeError naming the broken argument, thrown before any
// work; and the engine computes a valid call correctly afterwards. Seeded; fast-check prints the
// seed and the shrunk case on failure (replay with FLASHATTN_SEED).
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randn, rng } from '../src/cli/random.js';
import { freshSeed } from './conformance/random.js';
import { createEngine } from '../src/node.js';
import { referenceAttentionVarlen } from '../src/reference.js';
import type { Engine, Tensor, VarlenOptions } from '../src/types.js';

interface Call {
  q: Tensor;
  k: Tensor;
  v: Tensor;
  options: VarlenOptions;
  H: number;
  Hk: number;
  D: number;
  Dv: number;
}

const validCall = fc
  .record({
    lens: fc.array(fc.tuple(fc.integer({ min: 0, max: 9 }), fc.integer({ min: 0, max: 12 })), {
      minLength: 1,
      maxLength: 3,
    }),
    group: fc.constantFrom(1, 2),
    hk: fc.constantFrom(1, 2),
    D: fc.integer({ min: 1, max: 20 }),
    Dv: fc.integer({ min: 1, max: 20 }),
    causal: fc.boolean(),
    seed: fc.integer({ min: 0, max: 2 ** 31 }),
  })
  .map(({ lens, group, hk, D, Dv, causal, seed }): Call => {
    const next = rng(seed);
    const H = group * hk;
    const cuQ = Int32Array.from([0, ...lens.map((_, i) => lens.slice(0, i + 1).reduce((a, l) => a + l[0], 0))]);
    const cuK = Int32Array.from([0, ...lens.map((_, i) => lens.slice(0, i + 1).reduce((a, l) => a + l[1], 0))]);
    const tq = cuQ[cuQ.length - 1]!,
      tk = cuK[cuK.length - 1]!;
    const t = (n: number, shape: number[]): Tensor => ({ data: randn(next, n), shape, dtype: 'float32' });
    return {
      q: t(tq * H * D, [tq, H, D]),
      k: t(tk * hk * D, [tk, hk, D]),
      v: t(tk * hk * Dv, [tk, hk, Dv]),
      options: { cuSeqlensQ: cuQ, cuSeqlensK: cuK, causal },
      H,
      Hk: hk,
      D,
      Dv,
    };
  });

/** Values that break a slot, whatever it expects. */
const junk = fc.constantFrom<unknown>(
  '4',
  null,
  4n,
  NaN,
  Infinity,
  -Infinity,
  -0,
  0.5,
  -2,
  2 ** 53,
  1e308,
  {},
  [],
  [1, 2, 3],
  Symbol('x'),
  () => 1,
  true,
  new Float64Array(3),
  new Int32Array(2),
  new Proxy({}, {}),
);

type Mutation = { name: string; argument: RegExp; apply: (c: Call) => [unknown, unknown, unknown, unknown] };
const T = (c: Call, which: 'q' | 'k' | 'v', t: unknown): [unknown, unknown, unknown, unknown] => [
  which === 'q' ? t : c.q,
  which === 'k' ? t : c.k,
  which === 'v' ? t : c.v,
  c.options,
];
const O = (c: Call, o: object): [unknown, unknown, unknown, unknown] => [c.q, c.k, c.v, { ...c.options, ...o }];

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc
    .tuple(fc.constantFrom('q', 'k', 'v' as const), fc.constantFrom('data', 'shape', 'dtype'), junk)
    .map(([w, f, x]) => ({
      name: `${w}.${f} = ${String(typeof x === 'symbol' ? 'Symbol' : typeof x === 'bigint' ? `${x}n` : x)}`,
      argument: f === 'shape' ? /\b[qkv]\b|[qkv]\.shape|[qkv]\.data/ : new RegExp(`\\b${w}\\b`),
      apply: (c: Call) => T(c, w, { ...c[w], [f]: x }),
    })),
  fc
    .tuple(
      fc.constantFrom(
        'causal',
        'window',
        'softmaxScale',
        'softcap',
        'alibiSlopes',
        'returnLse',
        'cuSeqlensQ',
        'cuSeqlensK',
      ),
      junk,
    )
    .map(([key, x]) => ({
      name: `options.${key} = ${typeof x === 'symbol' ? 'Symbol' : typeof x === 'bigint' ? `${x}n` : String(x)}`,
      argument: new RegExp(`options\\.${key}\\b`),
      apply: (c: Call) => O(c, { [key]: x }),
    })),
  fc
    .tuple(fc.integer({ min: -3, max: 2 ** 31 }), fc.oneof(fc.integer({ min: -3, max: 40 }), fc.constant(2 ** 40)))
    .map(([l, r]) => ({
      name: `window [${l}, ${r}]`,
      argument: /options\.window/,
      apply: (c: Call) => O(c, { window: [l, r] }),
    })),
  fc.constantFrom('casual', 'Causal', 'softMaxScale', 'lse', 'window_size').map((key) => ({
    name: `unknown key ${key}`,
    argument: new RegExp(`options\\.${key}\\b`),
    apply: (c: Call) => O(c, { [key]: true }),
  })),
  fc.constantFrom('offset view', 'shared', 'detached', 'proxy', 'throwing getter').chain((how) =>
    fc.constantFrom('q', 'k', 'v' as const).map((w) => ({
      name: `${w}.data ${how}`,
      argument: new RegExp(`\\b${w}\\b`),
      apply: (c: Call) => {
        const src = c[w].data as Float32Array;
        let data: unknown = src;
        if (how === 'offset view') {
          const big = new Float32Array(src.length + 3);
          big.set(src, 3);
          data = big.subarray(3);
        }
        if (how === 'shared') {
          data = new Float32Array(new SharedArrayBuffer(src.byteLength));
          (data as Float32Array).set(src);
        }
        if (how === 'detached') {
          data = src.slice();
          structuredClone((data as Float32Array).buffer, { transfer: [(data as Float32Array).buffer] });
        }
        if (how === 'proxy') data = new Proxy(src, {});
        if (how === 'throwing getter')
          return T(c, w, {
            shape: c[w].shape,
            get data(): never {
              throw new Error('boom');
            },
          });
        return T(c, w, { ...c[w], data });
      },
    })),
  ),
);

const seed = freshSeed();
let engine: Engine;
beforeAll(async () => {
  engine = await createEngine({ backend: 'wasm', threads: 2 });
});
afterAll(async () => {
  await engine.dispose();
});

function maxError(out: Tensor, ref: Float64Array): number {
  let e = 0;
  for (let i = 0; i < ref.length; i++)
    e = Math.max(e, Math.abs((out.data as Float32Array)[i]! - ref[i]!) / Math.max(1, Math.abs(ref[i]!)));
  return out.data.length === ref.length ? e : Infinity;
}

describe(`fuzzing the call boundary (seed ${seed}; replay with FLASHATTN_SEED=${seed})`, () => {
  it('every broken call is computed right or rejected naming the argument; the engine then still works', async () => {
    await fc.assert(
      fc.asyncProperty(validCall, mutation, async (c, m) => {
        const [q, k, v, options] = m.apply(c);
        let got: Awaited<ReturnType<Engine['attentionVarlen']>> | null = null,
          err: unknown = null;
        try {
          got = await engine.attentionVarlen(q as Tensor, k as Tensor, v as Tensor, options as VarlenOptions);
        } catch (e) {
          err = e;
        }
        if (err === null) {
          // Accepted: then it must be a valid call (a view, a shared buffer, -0, a huge width...), computed right.
          const ref = referenceAttentionVarlen(q as Tensor, k as Tensor, v as Tensor, options as VarlenOptions);
          expect(maxError(got!.out as Tensor, ref.out64), m.name).toBeLessThanOrEqual(1e-4);
        } else {
          expect(err instanceof TypeError || err instanceof RangeError, `${m.name}: ${String(err)}`).toBe(true);
          expect((err as Error).message, m.name).toMatch(/^Expected .* for .* but received/);
          expect((err as Error).message, m.name).toMatch(m.argument);
        }
        const ok = await engine.attentionVarlen(c.q, c.k, c.v, c.options);
        expect(
          maxError(ok.out as Tensor, referenceAttentionVarlen(c.q, c.k, c.v, c.options).out64),
        ).toBeLessThanOrEqual(1e-4);
      }),
      { seed, numRuns: 500, interruptAfterTimeLimit: 20_000 },
    );
  }, 60_000);
});
