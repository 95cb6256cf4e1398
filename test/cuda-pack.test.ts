// The packed arguments of the CUDA addon (src/cuda/pack.ts) against the layout the addon reads
// (csrc/args.h): the same slots in the same order, and the offsets end to end. Runs without a GPU.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { NativeArgs } from '../src/cuda/addon.js';
import { packArgs, packWrite, SLOT, SLOTS } from '../src/cuda/pack.js';

const base: NativeArgs = {
  dtype: 'bfloat16',
  cuSeqlensQ: Int32Array.of(0, 1, 3),
  cuSeqlensK: Int32Array.of(0, 20, 37),
  totalQ: 3,
  totalK: 37,
  maxSeqlenQ: 2,
  numHeads: 4,
  numKvHeads: 2,
  headDim: 64,
  headDimV: 32,
  windowLeft: 5,
  windowRight: -1,
  softmaxScale: 0.125,
  softcap: 30,
  alibiSlopes: Float32Array.of(0.5, 0.25, 0.125, 0.0625),
  sinks: Float32Array.of(1, 2, 3, 4.5),
  fixedSeqlenQ: 0,
  returnLse: true,
  poison: false,
  float32AsHalf: true,
  forceSplits: 3,
  forceTile: 2,
  wgmma: false,
  order: 'clusters',
};

describe('cuda packed arguments', () => {
  it('has the slots of csrc/args.h, in its order', () => {
    const header = readFileSync(new URL('../csrc/args.h', import.meta.url), 'utf8');
    const body = header.slice(header.indexOf('enum Slot {'), header.indexOf('};', header.indexOf('enum Slot {')));
    const names = [...body.matchAll(/^\s*k(\w+),?/gm)].map((m) => m[1]!);
    expect(names.at(-1)).toBe('Slots');
    const camel = names.slice(0, -1).map((n) => n[0]!.toLowerCase() + n.slice(1));
    expect(camel).toEqual(Object.keys(SLOT));
    expect(Object.values(SLOT)).toEqual(camel.map((_, i) => i));
    expect(SLOTS).toBe(camel.length);
  });

  it('packs the numbers, then the sinks and the slopes', () => {
    const [s, i] = packArgs(base);
    expect(s.length).toBe(SLOTS + 8);
    expect(s[SLOT.dtype]).toBe(2);
    expect(s[SLOT.batch]).toBe(2);
    expect(s[SLOT.softcap]).toBe(30);
    expect(s[SLOT.order]).toBe(2);
    expect(s[SLOT.wgmma]).toBe(0);
    expect(s[SLOT.float32AsHalf]).toBe(1);
    expect(s[SLOT.paged]).toBe(0);
    expect(s[SLOT.totalNew]).toBe(-1);
    expect([...s.subarray(SLOTS)]).toEqual([1, 2, 3, 4.5, 0.5, 0.25, 0.125, 0.0625]);
    expect([...i]).toEqual([0, 20, 37, 0, 1, 3]); // cuSeqlensK, then cuSeqlensQ
  });

  it('lays a KV call out as the paging array the kernels read', () => {
    const [s, i] = packArgs({
      ...base,
      sinks: null,
      alibiSlopes: null,
      paged: {
        blockTable: Int32Array.of(7, 8, 9, 1, 2, -1),
        maxBlocks: 3,
        blockSize: 8,
        poolRows: 80,
        write: { cuSeqlensNew: Int32Array.of(0, 1, 2), cacheSeqlens: Int32Array.of(19, 16), totalNew: 2 },
      },
    });
    expect(s.length).toBe(SLOTS);
    expect([s[SLOT.paged], s[SLOT.maxBlocks], s[SLOT.blockSize], s[SLOT.poolRows], s[SLOT.totalNew]]).toEqual([
      1, 3, 8, 80, 2,
    ]);
    // table | cuSeqlensK | cuSeqlensNew | cacheSeqlens | cuSeqlensQ
    expect([...i]).toEqual([7, 8, 9, 1, 2, -1, 0, 20, 37, 0, 1, 2, 19, 16, 0, 1, 3]);
  });

  it('packs a write alone as a call without query rows over the grown sequences', () => {
    const [s, i] = packWrite({
      dtype: 'float16',
      numKvHeads: 2,
      headDim: 64,
      headDimV: 64,
      totalNew: 3,
      cuSeqlensNew: Int32Array.of(0, 2, 3),
      cacheSeqlens: Int32Array.of(5, 0),
      blockTable: Int32Array.of(4, 5),
      maxBlocks: 1,
      blockSize: 16,
      poolRows: 96,
    });
    expect([s[SLOT.totalQ], s[SLOT.totalK], s[SLOT.totalNew], s[SLOT.batch]]).toEqual([0, 8, 3, 2]);
    expect([...i]).toEqual([4, 5, 0, 7, 8, 0, 2, 3, 5, 0, 0, 0, 0]);
  });

  it('reuses its scratch: a longer call after a shorter one is laid out whole', () => {
    const table = Int32Array.from({ length: 5000 }, (_, k) => k);
    const [, i] = packArgs({ ...base, paged: { blockTable: table, maxBlocks: 2500, blockSize: 1, poolRows: 5000 } });
    expect(i.length).toBe(5000 + 6);
    expect(i[4999]).toBe(4999);
    expect([...i.subarray(5000)]).toEqual([0, 20, 37, 0, 1, 3]);
  });
});
