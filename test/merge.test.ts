// mergeAttention against the reference: attention over two (or three) disjoint parts of each sequence's keys,
// merged, equals attention over all of them. Then the edges (-Infinity, +Infinity, NaN), half dtypes rounded
// once, and bad parts.
import { describe, expect, it } from 'vitest';
import { bf16ToF32, decode, encode, f16ToF32 } from '../src/half.js';
import { type AttentionPart, mergeAttention, roundTo } from '../src/merge.js';
import { referenceAttention, referenceAttentionVarlen } from '../src/reference.js';
import type { DType, Tensor } from '../src/types.js';
import { freshSeed, randn, rng } from './conformance/random.js';

const seed = freshSeed();
const H = 4,
  HK = 2,
  D = 8,
  DV = 6;

/** Packed q, k, v for the key lengths, and each sequence's keys cut into parts at the given points. */
function split(next: () => number, lq: number[], lk: number[], cuts: number[][]) {
  const totalQ = lq.reduce((a, b) => a + b, 0),
    totalK = lk.reduce((a, b) => a + b, 0);
  const q: Tensor = { data: randn(next, totalQ * H * D), shape: [totalQ, H, D], dtype: 'float32' };
  const k = randn(next, totalK * HK * D, 1.5),
    v = randn(next, totalK * HK * DV);
  const prefix = (xs: number[]) =>
    Int32Array.from([0, ...xs.map((_, i) => xs.slice(0, i + 1).reduce((a, b) => a + b, 0))]);
  const cuQ = prefix(lq),
    cuK = prefix(lk);
  const whole = referenceAttentionVarlen(
    q,
    { data: k, shape: [totalK, HK, D] },
    { data: v, shape: [totalK, HK, DV] },
    { cuSeqlensQ: cuQ, cuSeqlensK: cuK, returnLse: true },
  );
  const parts = Array.from({ length: cuts[0]!.length - 1 }, (_, p) => {
    const lens = lk.map((_, b) => cuts[b]![p + 1]! - cuts[b]![p]!);
    const rows = lk.flatMap((_, b) => Array.from({ length: lens[b]! }, (_, j) => cuK[b]! + cuts[b]![p]! + j));
    const pick = (x: Float32Array, w: number) => {
      const o = new Float32Array(rows.length * w);
      rows.forEach((r, i) => {
        o.set(x.subarray(r * w, (r + 1) * w), i * w);
      });
      return o;
    };
    const r = referenceAttentionVarlen(
      q,
      { data: pick(k, HK * D), shape: [rows.length, HK, D] },
      { data: pick(v, HK * DV), shape: [rows.length, HK, DV] },
      { cuSeqlensQ: cuQ, cuSeqlensK: prefix(lens), returnLse: true },
    );
    return { out: r.out, lse: r.lse! };
  });
  return { whole, parts };
}

function close(got: ArrayLike<number>, want: ArrayLike<number>, tol: number) {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const w = want[i]!,
      g = got[i]!;
    if (!Number.isFinite(w)) expect(g).toBe(w);
    else expect(Math.abs(g - w)).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(w)));
  }
}

describe(`mergeAttention recovers attention over all the keys (seed ${seed}; replay with FLASHATTN_SEED=${seed})`, () => {
  it('packed: two halves per sequence, some empty, a sequence with no key at all', () => {
    const next = rng(seed);
    // cuts: [0, a, Lk] for each sequence: part 0 is keys 0 .. a - 1, part 1 the rest
    const lk = [10, 5, 7, 0, 3];
    const { whole, parts } = split(next, [3, 1, 2, 2, 1], lk, [
      [0, 4, 10],
      [0, 0, 5],
      [0, 7, 7],
      [0, 0, 0],
      [0, 1, 3],
    ]);
    const m = mergeAttention(parts);
    expect(m.out.shape).toEqual(whole.out.shape);
    expect(m.lse.shape).toEqual([H, 9]);
    expect(m.out.dtype).toBe('float32');
    close(m.out.data, whole.out64, 1e-5);
    close(m.lse.data, whole.lse64, 1e-5);
    // Sequence 3 has no key: out 0 and lse -Infinity (rows 6, 7), never NaN.
    for (let h = 0; h < H; h++) expect([m.lse.data[h * 9 + 6], m.lse.data[h * 9 + 7]]).toEqual([-Infinity, -Infinity]);
    for (const x of m.out.data) expect(Number.isNaN(x)).toBe(false);
  });

  it('three parts, in any order', () => {
    const next = rng(seed + 1);
    const { whole, parts } = split(
      next,
      [2, 4],
      [12, 9],
      [
        [0, 3, 8, 12],
        [0, 5, 5, 9],
      ],
    );
    expect(parts).toHaveLength(3);
    const a = mergeAttention(parts),
      b = mergeAttention([parts[2]!, parts[0]!, parts[1]!]);
    close(a.out.data, whole.out64, 1e-5);
    close(a.lse.data, whole.lse64, 1e-5);
    close(b.out.data, a.out.data, 1e-6);
  });

  it('fixed-length form: out [batch, seqlenQ, H, Dv], lse [batch, H, seqlenQ]', () => {
    const next = rng(seed + 2);
    const B = 2,
      S = 3,
      SK = 10,
      A = 6;
    const q: Tensor = { data: randn(next, B * S * H * D), shape: [B, S, H, D], dtype: 'float32' };
    const k = randn(next, B * SK * HK * D),
      v = randn(next, B * SK * HK * DV);
    const cut = (x: Float32Array, w: number, from: number, to: number) => {
      const o = new Float32Array(B * (to - from) * w);
      for (let b = 0; b < B; b++) o.set(x.subarray((b * SK + from) * w, (b * SK + to) * w), b * (to - from) * w);
      return { data: o, shape: [B, to - from, HK, w / HK] };
    };
    const whole = referenceAttention(q, cut(k, HK * D, 0, SK), cut(v, HK * DV, 0, SK), { returnLse: true });
    const part = (from: number, to: number) => {
      const r = referenceAttention(q, cut(k, HK * D, from, to), cut(v, HK * DV, from, to), { returnLse: true });
      return { out: r.out, lse: r.lse! };
    };
    const m = mergeAttention([part(0, A), part(A, SK)]);
    expect(m.out.shape).toEqual([B, S, H, DV]);
    expect(m.lse.shape).toEqual([B, H, S]);
    close(m.out.data, whole.out64, 1e-5);
    close(m.lse.data, whole.lse64, 1e-5);
  });

  it('one part is itself', () => {
    const { parts } = split(rng(seed + 3), [2], [5], [[0, 5]]);
    const m = mergeAttention(parts);
    expect(m.out.data).toEqual(parts[0]!.out.data);
    expect(m.lse.data).toEqual(parts[0]!.lse.data);
  });
});

const part = (out: number[], lse: number[], dtype: DType = 'float32'): AttentionPart => ({
  out: { data: encode(out, dtype), shape: [lse.length, 1, out.length / lse.length], dtype },
  lse: { data: Float32Array.from(lse), shape: [1, lse.length], dtype: 'float32' },
});

describe('edges', () => {
  it('every part -Infinity: out 0, lse -Infinity, never NaN', () => {
    const m = mergeAttention([part([0, 0, 1, 2], [-Infinity, 0]), part([0, 0, 3, 4], [-Infinity, 0])]);
    expect([...m.out.data]).toEqual([0, 0, 2, 3]);
    expect([...m.lse.data]).toEqual([-Infinity, Math.fround(Math.log(2))]);
  });

  it('a -Infinity part adds nothing; +Infinity takes the limit; NaN stays in its row', () => {
    const m = mergeAttention([
      part([0, 0, 1, 1, 5, 5], [-Infinity, Infinity, Number.NaN]),
      part([2, 4, 3, 3, 6, 6], [1.5, 2, 0]),
      part([7, 7, 9, 9, 1, 1], [-Infinity, Infinity, 0]),
    ]);
    expect([...m.lse.data]).toEqual([1.5, Infinity, Number.NaN]);
    expect([...m.out.data].slice(0, 4)).toEqual([2, 4, 5, 5]);
    expect(m.out.data.slice(4).every(Number.isNaN)).toBe(true);
  });

  it('half dtypes: computed in float64 and rounded once to nearest even', () => {
    for (const dtype of ['float16', 'bfloat16'] as DType[]) {
      const next = rng(seed + 4);
      const { whole, parts: f32 } = split(
        next,
        [3, 2],
        [9, 6],
        [
          [0, 4, 9],
          [0, 2, 6],
        ],
      );
      const parts = f32.map((p) => ({ out: { ...p.out, data: encode(p.out.data, dtype), dtype }, lse: p.lse }));
      const m = mergeAttention(parts);
      expect(m.out.dtype).toBe(dtype);
      expect(m.out.data).toBeInstanceOf(Uint16Array);
      close(decode(m.out.data, dtype), whole.out64, dtype === 'float16' ? 2e-3 : 1.6e-2);
      // The formula in float64 on the decoded parts, then one rounding: bit for bit.
      const outs = parts.map((p) => decode(p.out.data, dtype));
      const want = new Float64Array(outs[0]!.length);
      const T = 5;
      for (let r = 0; r < T; r++)
        for (let h = 0; h < H; h++) {
          const l = parts.map((p) => p.lse.data[h * T + r]!);
          const mx = Math.max(...l);
          const lse = mx + Math.log(l.reduce((a, x) => a + Math.exp(x - mx), 0));
          for (let d = 0; d < DV; d++)
            want[(r * H + h) * DV + d] = l.reduce(
              (a, x, p) => a + Math.exp(x - lse) * outs[p]![(r * H + h) * DV + d]!,
              0,
            );
        }
      expect([...m.out.data]).toEqual([...want].map((x) => exact(x, dtype)));
    }
  });
});

/** Correct rounding by search: positive half bit patterns are in value order, so x lies between two of them. */
function exact(x: number, dtype: DType): number {
  if (Number.isNaN(x)) return Number.NaN;
  const top = dtype === 'float16' ? 0x7c00 : 0x7f80;
  const val = (i: number) =>
    i === top ? (dtype === 'float16' ? 65536 : 2 ** 128) : dtype === 'float16' ? f16ToF32(i) : bf16ToF32(i);
  const a = Math.abs(x),
    sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  if (a >= val(top)) return sign | top;
  let lo = 0,
    hi = top;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (val(mid) <= a) lo = mid;
    else hi = mid;
  }
  const dl = a - val(lo),
    dh = val(hi) - a;
  return sign | (dl < dh || (dl === dh && lo % 2 === 0) ? lo : hi);
}

describe('roundTo: one rounding from float64', () => {
  it.each(['float16', 'bfloat16'] as DType[])(
    '%s: random values, exact midpoints and values just off them',
    (dtype) => {
      const next = rng(seed + 5);
      const top = dtype === 'float16' ? 0x7c00 : 0x7f80;
      const val = (i: number) => (dtype === 'float16' ? f16ToF32(i) : bf16ToF32(i));
      const xs: number[] = [0, -0, 1, -1, 65504, 65519.99, 65520, 1e-8, 2 ** -25, 2 ** -24 * 1.5, 3e38, 3.4e38, 1e300];
      for (let i = 0; i < 4000; i++) {
        const bits = Math.floor(next() * (top - 1));
        const mid = (val(bits) + val(bits + 1)) / 2;
        const s = next() < 0.5 ? -1 : 1;
        xs.push(s * mid, s * mid * (1 + 2 ** -45), s * mid * (1 - 2 ** -45), s * mid * (1 + 2 ** -30));
        xs.push(s * val(bits) * (1 + next() * 2 ** -8), (next() - 0.5) * 10 ** (Math.floor(next() * 20) - 10));
      }
      const got = roundTo(Float64Array.from(xs), dtype);
      xs.forEach((x, i) => {
        if (got[i] !== exact(x, dtype)) expect([x, got[i]]).toEqual([x, exact(x, dtype)]);
      });
      expect(
        [...roundTo(Float64Array.of(Number.NaN), dtype)].map((b) =>
          Number.isNaN(dtype === 'float16' ? f16ToF32(b) : bf16ToF32(b)),
        ),
      ).toEqual([true]);
    },
  );

  it('float32: Math.fround', () => {
    const x = Float64Array.of(1 + 2 ** -24, 1 + 3 * 2 ** -25, 1e-46, -3.5e38);
    expect([...roundTo(x, 'float32')]).toEqual([...x].map(Math.fround));
  });
});

describe('bad parts', () => {
  const ok = part([1, 2, 3, 4], [0, 1]);
  const bad: [string, unknown, ErrorConstructor, RegExp][] = [
    ['not an array', ok, TypeError, /array of parts .* for parts but received an object/],
    ['no part', [], RangeError, /at least one part for parts/],
    ['a part null', [ok, null], TypeError, /for parts\[1\] but received null/],
    ['no lse', [ok, { out: ok.out }], TypeError, /returnLse: true\) for parts\[1\].lse but received undefined/],
    ['out not a tensor', [{ out: 3, lse: ok.lse }], TypeError, /for parts\[0\].out but received 3/],
    [
      'out rank 2',
      [{ out: { data: new Float32Array(4), shape: [2, 2] }, lse: ok.lse }],
      RangeError,
      /rank 3 .* for parts\[0\].out.shape/,
    ],
    [
      'out shapes differ',
      [ok, part([1, 2, 3, 4, 5, 6], [0, 1])],
      RangeError,
      /shape \[2, 1, 2\] like parts\[0\].out for parts\[1\].out.shape but received \[2, 1, 3\]/,
    ],
    [
      'out dtypes differ',
      [ok, part([1, 2, 3, 4], [0, 1], 'float16')],
      TypeError,
      /dtype 'float32' like parts\[0\].out for parts\[1\].out.dtype/,
    ],
    [
      'lse not float32',
      [{ out: ok.out, lse: { data: new Uint16Array(2), shape: [1, 2], dtype: 'float16' } }],
      TypeError,
      /dtype 'float32' for parts\[0\].lse.dtype/,
    ],
    [
      'lse of the fixed form for packed out',
      [{ out: ok.out, lse: { data: new Float32Array(2), shape: [1, 1, 2] } }],
      RangeError,
      /shape \[1, 2\] \(\[numHeads, totalQ\] for out \[2, 1, 2\]\) for parts\[0\].lse.shape/,
    ],
    [
      'lse transposed',
      [{ out: ok.out, lse: { data: new Float32Array(2), shape: [2, 1] } }],
      RangeError,
      /for parts\[0\].lse.shape but received \[2, 1\]/,
    ],
    [
      'a device tensor',
      [{ out: { shape: [2, 1, 2], dtype: 'float32', location: 'cuda', dispose() {} }, lse: ok.lse }],
      TypeError,
      /host tensor \(engine.mergeAttention merges a cuda engine's device results; or engine.download\(\) it first\) for parts\[0\].out but received a tensor on 'cuda'/,
    ],
  ];
  it.each(bad)('%s', (_name, parts, cls, message) => {
    let err: unknown = null;
    try {
      mergeAttention(parts as AttentionPart[]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(cls);
    expect((err as Error).message).toMatch(message);
    expect((err as Error).message).toMatch(/^Expected .* for .* but received/);
  });
});

describe('engine.mergeAttention', () => {
  it('merges host parts as mergeAttention does; device tensors of an engine without a device merge are refused', async () => {
    const { createEngine } = await import('../src/node.js');
    const e = await createEngine({ backend: 'wasm', threads: 1 });
    const part = (x: number): AttentionPart => ({
      out: { data: Float32Array.of(x, 2 * x), shape: [1, 1, 2], dtype: 'float32' },
      lse: { data: Float32Array.of(x), shape: [1, 1], dtype: 'float32' },
    });
    const parts = [part(0.5), part(-1), part(3)];
    const got = await e.mergeAttention(parts);
    const want = mergeAttention(parts);
    expect(Array.from(got.out.data)).toEqual(Array.from(want.out.data));
    expect(Array.from(got.lse.data)).toEqual(Array.from(want.lse.data));
    const resident = await e.upload({ data: Float32Array.of(1, 2), shape: [1, 1, 2], dtype: 'float32' });
    const fake = { ...resident, location: 'cuda' } as never;
    await expect(e.mergeAttention([{ out: fake, lse: fake }])).rejects.toThrow(/download\(\) them first/);
    resident.dispose();
    await e.dispose();
  });
});
