// KvBlocks: the block bookkeeping of a decode loop, and a whole loop on the reference (a prefill, then steps
// of one token and of a few, a sequence ending and another starting) against attentionVarlen on the
// sequences' keys laid end to end.
import { describe, expect, it } from 'vitest';
import { KvBlocks } from '../src/kvcache/blocks.js';
import { referenceAttentionWithKvCache } from '../src/kvcache/reference.js';
import { referenceAttentionVarlen } from '../src/reference.js';
import type { Tensor } from '../src/types.js';
import { freshSeed, randn, rng } from './conformance/random.js';

const seed = freshSeed();

describe('KvBlocks', () => {
  it('hands out blocks as sequences fill them, lowest ids first, and takes them back', () => {
    const kb = new KvBlocks(6, 4);
    expect([kb.numBlocks, kb.blockSize, kb.freeBlocks]).toEqual([6, 4, 6]);
    const a = kb.addSequence(),
      b = kb.addSequence();
    expect(kb.sequences).toEqual([a, b]);
    kb.grow(a, 5);
    expect([kb.length(a), kb.blocks(a), kb.freeBlocks]).toEqual([5, [0, 1], 4]);
    kb.grow(a, 3);
    expect(kb.blocks(a)).toEqual([0, 1]);
    kb.grow(a, 1);
    expect(kb.blocks(a)).toEqual([0, 1, 2]);
    kb.grow(b, 0);
    expect([kb.length(b), kb.blocks(b)]).toEqual([0, []]);
    kb.truncate(a, 4);
    expect([kb.length(a), kb.blocks(a), kb.freeBlocks]).toEqual([4, [0], 5]);
    kb.free(a);
    expect(kb.freeBlocks).toBe(6);
    expect(kb.sequences).toEqual([b]);
    // freed blocks come back first
    kb.grow(b, 1);
    expect(kb.blocks(b)).toEqual([0]);
  });

  it('takes the pool size from a cache', () => {
    const kb = new KvBlocks({ numBlocks: 3, blockSize: 7 });
    expect([kb.numBlocks, kb.blockSize]).toEqual([3, 7]);
  });

  it('batch: lengths before, the table after (-1 past each last block), offsets of the new rows', () => {
    const kb = new KvBlocks(10, 4);
    const a = kb.addSequence(),
      b = kb.addSequence(),
      c = kb.addSequence();
    const first = kb.batch([a, b, c], [5, 1, 0]);
    expect([...first.cacheSeqlens]).toEqual([0, 0, 0]);
    expect([...first.cuSeqlensNew]).toEqual([0, 5, 6, 6]);
    expect([...first.blockTable]).toEqual([0, 1, 2, -1, -1, -1]);
    const step = kb.batch([b, a], 1);
    expect([...step.cacheSeqlens]).toEqual([1, 5]);
    expect([...step.cuSeqlensNew]).toEqual([0, 1, 2]);
    expect([...step.blockTable]).toEqual([2, -1, 0, 1]);
    const read = kb.batch([a]);
    expect([...read.cacheSeqlens]).toEqual([6]);
    expect([...read.cuSeqlensNew]).toEqual([0, 0]);
    expect([...read.blockTable]).toEqual([0, 1]);
    expect(kb.batch([])).toEqual({
      cacheSeqlens: new Int32Array(0),
      blockTable: new Int32Array(0),
      cuSeqlensNew: Int32Array.of(0),
    });
  });

  it('an exhausted pool is a RangeError naming it, and takes nothing', () => {
    const kb = new KvBlocks(3, 2);
    const a = kb.addSequence(),
      b = kb.addSequence();
    kb.grow(a, 3);
    expect(() => kb.grow(b, 3)).toThrow(RangeError);
    expect(() => kb.grow(b, 3)).toThrow(
      /^Expected new rows that fit in the free blocks of this KvBlocks pool \(1 of 3 blocks of 2 rows free\) for newTokens but received 3 new rows, which need 2 more blocks$/,
    );
    expect(() => kb.batch([a, b], [2, 2])).toThrow(/KvBlocks pool/);
    expect([kb.length(a), kb.length(b), kb.freeBlocks]).toEqual([3, 0, 1]);
    kb.batch([a, b], [1, 0]);
    expect(kb.freeBlocks).toBe(1);
  });

  it('bad arguments name themselves', () => {
    const kb = new KvBlocks(4, 2);
    const a = kb.addSequence();
    kb.free(a);
    const bad: [() => unknown, ErrorConstructor, RegExp][] = [
      [() => new KvBlocks(0, 2), RangeError, /for numBlocks but received 0/],
      [() => new KvBlocks(4, 1.5), RangeError, /for blockSize but received 1.5/],
      [() => new KvBlocks('4' as never, 2), TypeError, /for numBlocks but received "4"/],
      [() => new KvBlocks({ numBlocks: 4, blockSize: 2 }, 2), TypeError, /for blockSize but received 2/],
      [() => kb.length(a), RangeError, /live sequence of this KvBlocks .* for seq but received 0/],
      [() => kb.grow(99, 1), RangeError, /for seq but received 99/],
      [() => kb.grow('0' as never, 1), TypeError, /sequence id .* for seq/],
      [() => kb.grow(kb.addSequence(), -1), RangeError, /for newTokens but received -1/],
      [() => kb.truncate(kb.addSequence(), 1), RangeError, /from 0 to the sequence's length \(0\) for length/],
      [() => kb.batch(3 as never), TypeError, /array of sequence ids for seqs/],
      [() => kb.batch([a]), RangeError, /for seqs\[0\] but received 0/],
      [() => kb.batch([kb.sequences[0]!, kb.sequences[0]!]), RangeError, /distinct sequences .* for seqs/],
      [() => kb.batch([kb.sequences[0]!], [1, 2]), RangeError, /1 counts, one per sequence for newTokens/],
      [() => kb.batch([kb.sequences[0]!], [0.5]), RangeError, /for newTokens\[0\] but received 0.5/],
      [() => kb.grow(kb.sequences[0]!, 2 ** 31), RangeError, /for newTokens/],
    ];
    for (const [run, cls, message] of bad) {
      let err: unknown = null;
      try {
        run();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(cls);
      expect((err as Error).message).toMatch(message);
      expect((err as Error).message).toMatch(/^Expected .* for .* but received/);
    }
  });
});

describe(`a decode loop on KvBlocks and the reference (seed ${seed}; replay with FLASHATTN_SEED=${seed})`, () => {
  it('each step equals attentionVarlen over every key so far', () => {
    const next = rng(seed);
    const H = 4,
      HK = 2,
      D = 8,
      NB = 12,
      BS = 3;
    const kb = new KvBlocks(NB, BS);
    let cache = {
      k: { data: randn(next, NB * BS * HK * D), shape: [NB, BS, HK, D], dtype: 'float32' } as Tensor,
      v: { data: randn(next, NB * BS * HK * D), shape: [NB, BS, HK, D], dtype: 'float32' } as Tensor,
    };
    // Each sequence's keys so far, in order (what the cache holds for it, read logically).
    const hist = new Map<number, { k: number[]; v: number[] }>();
    let live = [kb.addSequence(), kb.addSequence()];
    for (const s of live) hist.set(s, { k: [], v: [] });
    // A prefill of 7 and 4 tokens, then steps of 1 (a sequence ends after step 3, a new one starts), and a
    // speculative step of 3 rows of which the first 2 are kept.
    const steps: { seqs: () => number[]; counts: number[] }[] = [{ seqs: () => live, counts: [7, 4] }];
    for (let i = 0; i < 6; i++) steps.push({ seqs: () => live, counts: [1, 1] });
    steps.push({ seqs: () => live, counts: [3, 1] });
    steps.push({ seqs: () => live, counts: [1, 2] });
    steps.forEach((step, i) => {
      if (i === 4) {
        kb.free(live[0]!);
        hist.delete(live[0]!);
        live = [live[1]!, kb.addSequence()];
        hist.set(live[1]!, { k: [], v: [] });
        step.counts = [1, 5];
      }
      const seqs = step.seqs(),
        counts = step.counts;
      const total = counts.reduce((a, b) => a + b, 0);
      const q = { data: randn(next, total * H * D), shape: [total, H, D] },
        kNew = randn(next, total * HK * D),
        vNew = randn(next, total * HK * D);
      const opts = kb.batch(seqs, counts);
      const r = referenceAttentionWithKvCache(q, cache, {
        ...opts,
        cuSeqlensQ: opts.cuSeqlensNew,
        kNew: { data: kNew, shape: [total, HK, D] },
        vNew: { data: vNew, shape: [total, HK, D] },
        causal: true,
        returnLse: true,
      });
      cache = r.cache;
      const row = HK * D;
      seqs.forEach((s, b) => {
        const h = hist.get(s)!;
        for (let j = opts.cuSeqlensNew[b]!; j < opts.cuSeqlensNew[b + 1]!; j++) {
          h.k.push(...kNew.subarray(j * row, (j + 1) * row));
          h.v.push(...vNew.subarray(j * row, (j + 1) * row));
        }
      });
      const lens = seqs.map((s) => hist.get(s)!.k.length / row);
      const want = referenceAttentionVarlen(
        q,
        {
          data: Float32Array.from(seqs.flatMap((s) => hist.get(s)!.k)),
          shape: [lens.reduce((a, b) => a + b, 0), HK, D],
        },
        {
          data: Float32Array.from(seqs.flatMap((s) => hist.get(s)!.v)),
          shape: [lens.reduce((a, b) => a + b, 0), HK, D],
        },
        {
          cuSeqlensQ: opts.cuSeqlensNew,
          cuSeqlensK: Int32Array.from([0, ...lens.map((_, b) => lens.slice(0, b + 1).reduce((a, x) => a + x, 0))]),
          causal: true,
          returnLse: true,
        },
      );
      expect(r.out64).toEqual(want.out64);
      expect(r.lse64).toEqual(want.lse64);
      expect(seqs.map((s) => kb.length(s))).toEqual(lens);
      if (i === steps.length - 2) {
        // The speculative step: keep 2 of the first sequence's 3 rows.
        const s = seqs[0]!;
        kb.truncate(s, kb.length(s) - 1);
        const h = hist.get(s)!;
        h.k.length -= row;
        h.v.length -= row;
      }
    });
    expect(kb.freeBlocks).toBe(NB - live.reduce((a, s) => a + Math.ceil(kb.length(s) / BS), 0));
  });
});
