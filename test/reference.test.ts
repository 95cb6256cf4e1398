// The float64 reference checked against values worked out by hand from docs/semantics.md.
import { describe, expect, it } from 'vitest';
import { visibleRange } from '../src/problem.js';
import { referenceAttention, referenceAttentionVarlen } from '../src/reference.js';
import { tensor } from '../src/tensor.js';

const f = (...x: number[]) => Float32Array.from(x);
const cu = (...x: number[]) => Int32Array.from(x);

describe('visibility (bottom-right alignment)', () => {
  it('Lq = 10, Lk = 20, causal: row 0 sees keys 0..10, row 9 sees 0..19', () => {
    expect(visibleRange(0, 10, 20, -1, 0)).toEqual([0, 10]);
    expect(visibleRange(9, 10, 20, -1, 0)).toEqual([0, 19]);
  });
  it('Lq = 20, Lk = 10, causal: rows 0..9 see no key', () => {
    for (let i = 0; i < 10; i++) {
      const [lo, hi] = visibleRange(i, 20, 10, -1, 0);
      expect(hi).toBeLessThan(lo);
    }
    expect(visibleRange(10, 20, 10, -1, 0)).toEqual([0, 0]);
  });
  it('windows are widths around the diagonal, clamped to the sequence', () => {
    expect(visibleRange(5, 8, 8, 2, 1)).toEqual([3, 6]);
    expect(visibleRange(0, 8, 8, 2, 1)).toEqual([0, 1]);
    expect(visibleRange(3, 4, 4, 0, 0)).toEqual([3, 3]);
  });
});

describe('referenceAttentionVarlen by hand', () => {
  it('one query, two keys: softmax weights e/(e+1) and 1/(e+1)', () => {
    const r = referenceAttentionVarlen(
      tensor(f(1), [1, 1, 1]),
      tensor(f(1, 0), [2, 1, 1]),
      tensor(f(2, 4), [2, 1, 1]),
      { cuSeqlensQ: cu(0, 1), cuSeqlensK: cu(0, 2), softmaxScale: 1, returnLse: true },
    );
    const e = Math.E;
    expect(r.out64[0]).toBeCloseTo((2 * e + 4) / (e + 1), 12);
    expect(r.lse64[0]).toBeCloseTo(Math.log(e + 1), 12);
  });

  it('causal with Lq > Lk: the first row sees nothing (zeros, lse -Infinity)', () => {
    const r = referenceAttentionVarlen(tensor(f(1, 2), [2, 1, 1]), tensor(f(3), [1, 1, 1]), tensor(f(7), [1, 1, 1]), {
      cuSeqlensQ: cu(0, 2),
      cuSeqlensK: cu(0, 1),
      causal: true,
      softmaxScale: 0.5,
      returnLse: true,
    });
    expect([...r.out64]).toEqual([0, 7]);
    expect(r.lse64[0]).toBe(-Infinity);
    expect(r.lse64[1]).toBeCloseTo(0.5 * 2 * 3, 12);
  });

  it('window [0, 0] sees only the diagonal key', () => {
    const r = referenceAttentionVarlen(
      tensor(f(1, 1, 1), [3, 1, 1]),
      tensor(f(1, 2, 3), [3, 1, 1]),
      tensor(f(10, 20, 30), [3, 1, 1]),
      { cuSeqlensQ: cu(0, 3), cuSeqlensK: cu(0, 3), window: [0, 0], softmaxScale: 1, returnLse: true },
    );
    expect([...r.out64]).toEqual([10, 20, 30]);
    expect([...r.lse64]).toEqual([1, 2, 3]);
  });

  it('ALiBi subtracts slope * |d(i) - j|', () => {
    const r = referenceAttentionVarlen(
      tensor(f(0), [1, 1, 1]),
      tensor(f(1, 1, 1), [3, 1, 1]),
      tensor(f(1, 2, 3), [3, 1, 1]),
      { cuSeqlensQ: cu(0, 1), cuSeqlensK: cu(0, 3), alibiSlopes: [1], returnLse: true },
    );
    const w = [Math.exp(-2), Math.exp(-1), 1],
      z = w[0]! + w[1]! + w[2]!;
    expect(r.out64[0]).toBeCloseTo((w[0]! + 2 * w[1]! + 3 * w[2]!) / z, 12);
    expect(r.lse64[0]).toBeCloseTo(Math.log(z), 12);
  });

  it('softcap applies c * tanh(s / c) before the softmax', () => {
    const r = referenceAttentionVarlen(tensor(f(4), [1, 1, 1]), tensor(f(1), [1, 1, 1]), tensor(f(5), [1, 1, 1]), {
      cuSeqlensQ: cu(0, 1),
      cuSeqlensK: cu(0, 1),
      softmaxScale: 1,
      softcap: 2,
      returnLse: true,
    });
    expect(r.lse64[0]).toBeCloseTo(2 * Math.tanh(2), 12);
    expect(r.out64[0]).toBe(5);
  });

  it('grouped heads: query head h reads kv head floor(h / group)', () => {
    // 4 query heads, 2 kv heads, one key: each output is its kv head's value.
    const r = referenceAttentionVarlen(
      tensor(f(1, 1, 1, 1), [1, 4, 1]),
      tensor(f(1, 1), [1, 2, 1]),
      tensor(f(10, 20), [1, 2, 1]),
      { cuSeqlensQ: cu(0, 1), cuSeqlensK: cu(0, 1) },
    );
    expect([...r.out64]).toEqual([10, 10, 20, 20]);
  });

  it('packed sequences are independent, and empty ones are fine', () => {
    const r = referenceAttentionVarlen(
      tensor(f(1, 1), [2, 1, 1]),
      tensor(f(0, 0, 0), [3, 1, 1]),
      tensor(f(1, 3, 8), [3, 1, 1]),
      { cuSeqlensQ: cu(0, 1, 1, 2), cuSeqlensK: cu(0, 2, 3, 3), returnLse: true },
    );
    expect([...r.out64]).toEqual([2, 0]);
    expect(r.lse64[0]).toBeCloseTo(Math.log(2), 12);
    expect(r.lse64[1]).toBe(-Infinity);
  });

  it('headDimV may differ from headDim', () => {
    const r = referenceAttentionVarlen(
      tensor(f(1, 0), [1, 1, 2]),
      tensor(f(0, 1), [1, 1, 2]),
      tensor(f(1, 2, 3), [1, 1, 3]),
      { cuSeqlensQ: cu(0, 1), cuSeqlensK: cu(0, 1) },
    );
    expect(r.out.shape).toEqual([1, 1, 3]);
    expect([...r.out64]).toEqual([1, 2, 3]);
  });
});

describe('referenceAttention (fixed length)', () => {
  it('lse is laid out [batch, numHeads, seqlenQ]', () => {
    // batch 2, seqlen 1, 2 heads, d 1; one key per sequence so lse = scale * q * k.
    const q = tensor(f(1, 2, 3, 4), [2, 1, 2, 1]);
    const k = tensor(f(1, 1, 1, 1), [2, 1, 2, 1]);
    const v = tensor(f(0, 0, 0, 0), [2, 1, 2, 1]);
    const r = referenceAttention(q, k, v, { softmaxScale: 1, returnLse: true });
    expect(r.lse!.shape).toEqual([2, 2, 1]);
    expect([...r.lse64]).toEqual([1, 2, 3, 4]);
  });
});
