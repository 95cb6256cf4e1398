/**
 * A call's arguments as the addon reads them (csrc/args.h): numbers in one Float64Array, integer arrays laid
 * end to end in one Int32Array. Reading thirty properties of an object through N-API cost a decode step
 * ~25 us on the GPU machine's CPU; two typed arrays cost two pointer reads. The arrays are scratch reused by
 * every call: the addon copies what it keeps before it returns.
 *
 * The Int32Array is the paging array as the kernels read it, so a KV cache call's metadata goes to the GPU
 * as one block: [blockTable (batch x maxBlocks) | cuSeqlensK (batch + 1) | cuSeqlensNew (batch + 1) |
 * cacheSeqlens (batch) | cuSeqlensQ (batch + 1)], the table empty for a call without a cache and the write's
 * two arrays empty for a call without new rows.
 */
import type { DType } from '../types.js';
import type { NativeArgs, NativeKvWriteArgs } from './addon.js';

/** Slots of the Float64Array; csrc/args.h `Slot` has the same names in the same order. */
export const SLOT = {
  dtype: 0,
  batch: 1,
  totalQ: 2,
  totalK: 3,
  maxSeqlenQ: 4,
  numHeads: 5,
  numKvHeads: 6,
  headDim: 7,
  headDimV: 8,
  windowLeft: 9,
  windowRight: 10,
  softmaxScale: 11,
  softcap: 12,
  fixedSeqlenQ: 13,
  returnLse: 14,
  poison: 15,
  float32AsHalf: 16,
  forceSplits: 17,
  forceTile: 18,
  wgmma: 19,
  order: 20,
  numSinks: 21,
  numSlopes: 22,
  paged: 23,
  maxBlocks: 24,
  blockSize: 25,
  poolRows: 26,
  /** -1: no write (a read-only call); else the new rows, which follow the write's offsets. */
  totalNew: 27,
} as const;
/** Slots before the sinks and then the ALiBi slopes. */
export const SLOTS = 28;

const DTYPES: readonly DType[] = ['float32', 'float16', 'bfloat16'];
/** cuda/work_order.h WorkOrder, in its order. */
const ORDERS = ['auto', 'longest', 'clusters', 'hybrid'] as const;

let numbers = new Float64Array(64);
let ints = new Int32Array(1024);

function grow(n: number, m: number): void {
  if (numbers.length < n) numbers = new Float64Array(Math.max(n, 2 * numbers.length));
  if (ints.length < m) ints = new Int32Array(Math.max(m, 2 * ints.length));
}

/** The packed form of an attention call (addon.attention, addon.timeAttention). */
export function packArgs(a: NativeArgs): [Float64Array, Int32Array] {
  const batch = a.cuSeqlensQ.length - 1;
  const sinks = a.sinks?.length ?? 0,
    slopes = a.alibiSlopes?.length ?? 0;
  const pg = a.paged,
    w = pg?.write;
  const table = pg ? pg.blockTable.length : 0;
  const nInts = table + 2 * (batch + 1) + (w ? 2 * batch + 1 : 0);
  grow(SLOTS + sinks + slopes, nInts);
  const s = numbers;
  s[SLOT.dtype] = DTYPES.indexOf(a.dtype);
  s[SLOT.batch] = batch;
  s[SLOT.totalQ] = a.totalQ;
  s[SLOT.totalK] = a.totalK;
  s[SLOT.maxSeqlenQ] = a.maxSeqlenQ;
  s[SLOT.numHeads] = a.numHeads;
  s[SLOT.numKvHeads] = a.numKvHeads;
  s[SLOT.headDim] = a.headDim;
  s[SLOT.headDimV] = a.headDimV;
  s[SLOT.windowLeft] = a.windowLeft;
  s[SLOT.windowRight] = a.windowRight;
  s[SLOT.softmaxScale] = a.softmaxScale;
  s[SLOT.softcap] = a.softcap;
  s[SLOT.fixedSeqlenQ] = a.fixedSeqlenQ;
  s[SLOT.returnLse] = a.returnLse ? 1 : 0;
  s[SLOT.poison] = a.poison ? 1 : 0;
  s[SLOT.float32AsHalf] = a.float32AsHalf ? 1 : 0;
  s[SLOT.forceSplits] = a.forceSplits;
  s[SLOT.forceTile] = a.forceTile;
  s[SLOT.wgmma] = a.wgmma ? 1 : 0;
  s[SLOT.order] = ORDERS.indexOf(a.order);
  s[SLOT.numSinks] = sinks;
  s[SLOT.numSlopes] = slopes;
  s[SLOT.paged] = pg ? 1 : 0;
  s[SLOT.maxBlocks] = pg ? pg.maxBlocks : 0;
  s[SLOT.blockSize] = pg ? pg.blockSize : 0;
  s[SLOT.poolRows] = pg ? pg.poolRows : 0;
  s[SLOT.totalNew] = w ? w.totalNew : -1;
  if (a.sinks) s.set(a.sinks, SLOTS);
  if (a.alibiSlopes) s.set(a.alibiSlopes, SLOTS + sinks);
  const i = ints;
  let at = 0;
  const put = (x: Int32Array) => {
    i.set(x, at);
    at += x.length;
  };
  if (pg) put(pg.blockTable);
  put(a.cuSeqlensK);
  if (w) {
    put(w.cuSeqlensNew);
    put(w.cacheSeqlens);
  }
  i.set(a.cuSeqlensQ, at);
  return [s.subarray(0, SLOTS + sinks + slopes), i.subarray(0, nInts)];
}

/**
 * The packed form of a write alone (addon.kvWrite): a call with no query rows whose keys are each sequence's
 * rows after the write.
 */
export function packWrite(a: NativeKvWriteArgs): [Float64Array, Int32Array] {
  const batch = a.cacheSeqlens.length;
  const cuSeqlensK = new Int32Array(batch + 1);
  for (let b = 0; b < batch; b++)
    cuSeqlensK[b + 1] = cuSeqlensK[b]! + a.cacheSeqlens[b]! + a.cuSeqlensNew[b + 1]! - a.cuSeqlensNew[b]!;
  return packArgs({
    dtype: a.dtype,
    cuSeqlensQ: new Int32Array(batch + 1),
    cuSeqlensK,
    totalQ: 0,
    totalK: cuSeqlensK[batch]!,
    maxSeqlenQ: 0,
    numHeads: a.numKvHeads,
    numKvHeads: a.numKvHeads,
    headDim: a.headDim,
    headDimV: a.headDimV,
    windowLeft: -1,
    windowRight: -1,
    softmaxScale: 1,
    softcap: 0,
    alibiSlopes: null,
    sinks: null,
    fixedSeqlenQ: 0,
    returnLse: false,
    poison: false,
    forceSplits: 0,
    forceTile: 0,
    wgmma: true,
    order: 'auto',
    paged: {
      blockTable: a.blockTable,
      maxBlocks: a.maxBlocks,
      blockSize: a.blockSize,
      poolRows: a.poolRows,
      write: { cuSeqlensNew: a.cuSeqlensNew, cacheSeqlens: a.cacheSeqlens, totalNew: a.totalNew },
    },
  });
}
