/**
 * Splits a validated problem into the kernel's work items.
 *
 * A work item is (sequence, query heads h0..h0+ng-1 sharing one kv head, query rows i0..i0+nr-1,
 * keys ks..ke-1). Sequences with at least BM query rows get one head per item and blocks of BM
 * rows; shorter ones stack up to BM / Lq heads of the same kv head into one item, so K and V are
 * read once per group. Where that leaves at most 4 rows per kv head (decode: 1 row x 4 heads), one
 * item takes up to NK_MAX adjacent kv heads, one group of 4 rows each, and reads each key's K and V
 * rows of all of them in one run. Items with few rows and a long key range are split into fixed
 * SPLIT_KEYS-key pieces whose partial results the kernel combines in a fixed order: the split depends
 * only on the problem, never on the thread count, so the result is bitwise identical for every
 * thread count. Items are ordered longest first so that the threads taking them from the shared
 * counter finish together, and the splits of one key range together.
 *
 * The items are walked twice: once to count them (no allocation, so a call with too many is
 * refused before any memory proportional to it is taken), then to fill typed arrays.
 */
import { visibleRange } from '../problem.js';
import {
  BM,
  I_H0,
  I_I0,
  I_K0,
  I_KE,
  I_KS,
  I_LK,
  I_LQ,
  I_NG,
  I_NK,
  I_NR,
  I_PARENT,
  I_Q0,
  I_SLOT,
  ITEM_INTS,
  NK_MAX,
  PA_SPLITS,
  PA_FIRST,
  PA_LEFT,
  PARENT_INTS,
  SLOT_ROWS,
} from './abi.js';

/** Items of one kv head are split when they have at most this many rows; decode items of several, up to the kernel's partial slot size. */
export const SPLIT_MAX_ROWS = 16;
/** Keys per split item, and the shortest key range that is split. */
export const SPLIT_KEYS = 512;
export const SPLIT_MIN = 2 * SPLIT_KEYS;
/** Work items one call may have: the plan takes about 110 bytes of JavaScript memory per item. */
export const MAX_ITEMS = 2 ** 22;

export interface ItemPlan {
  /** ITEM_INTS per item, longest first. */
  items: Int32Array;
  count: number;
  /** PARENT_INTS per split parent (PA_ slots: splits left, split count, first slot). */
  parents: Int32Array;
  parentCount: number;
  slotCount: number;
}

/**
 * A paged call (attention over a KV cache): sequence b's keys are positions 0 .. seqlensK[b] - 1, read through
 * its row of the block table, so its items' key offset (I_K0) is that row's first entry, b * maxBlocksPerSeq.
 */
export interface Paging {
  readonly seqlensK: Int32Array;
  readonly blockTable: Int32Array;
  readonly blockSize: number;
  readonly maxBlocksPerSeq: number;
}

interface Shape {
  batch: number;
  cuSeqlensQ: Int32Array;
  cuSeqlensK: Int32Array;
  numHeads: number;
  numKvHeads: number;
  windowLeft: number;
  windowRight: number;
  /** Set for a paged call: then cuSeqlensK is not read. */
  paging?: Paging | null;
}

/** Receives the walk's items (fields by their abi.ts slot order) and split parents. */
interface Sink {
  item(
    q0: number,
    lq: number,
    k0: number,
    lk: number,
    h0: number,
    ng: number,
    i0: number,
    nr: number,
    ks: number,
    ke: number,
    parent: number,
    slot: number,
    nk: number,
    cost: number,
    split: number,
  ): void;
  parent(splits: number, firstSlot: number): void;
}

/** Heads per item and rows per head for a sequence of Lq query rows. */
function rowsOf(lq: number, group: number): { ng: number; nr: number } {
  return lq >= BM ? { ng: 1, nr: BM } : { ng: Math.min(group, Math.floor(BM / lq)), nr: lq };
}

function walk(p: Shape, sink: Sink): { count: number; parents: number; slots: number } {
  const H = p.numHeads,
    Hk = p.numKvHeads,
    G = H / Hk;
  let count = 0,
    parents = 0,
    slots = 0;
  const lo = new Int32Array(BM),
    hi = new Int32Array(BM);
  for (let b = 0; b < p.batch; b++) {
    const q0 = p.cuSeqlensQ[b]!,
      lq = p.cuSeqlensQ[b + 1]! - q0;
    const pg = p.paging;
    const k0 = pg ? b * pg.maxBlocksPerSeq : p.cuSeqlensK[b]!,
      lk = pg ? pg.seqlensK[b]! : p.cuSeqlensK[b + 1]! - k0;
    if (lq === 0) continue;
    const { ng, nr } = rowsOf(lq, G);
    for (let i0 = 0; i0 < lq; i0 += nr) {
      const nri = Math.min(nr, lq - i0);
      // Keys some row of the block sees, and the pairs it keeps (the item's cost).
      let loMin = Infinity,
        hiMax = -Infinity,
        n = 0;
      for (let i = i0; i < i0 + nri; i++) {
        const [l, h] = visibleRange(i, lq, lk, p.windowLeft, p.windowRight);
        if (h >= l) {
          loMin = Math.min(loMin, l);
          hiMax = Math.max(hiMax, h);
          lo[n] = l;
          hi[n++] = h;
        }
      }
      const pairsIn = (ks: number, ke: number) => {
        let pairs = 0;
        for (let r = 0; r < n; r++) pairs += Math.max(0, Math.min(hi[r]! + 1, ke) - Math.max(lo[r]!, ks));
        return pairs;
      };
      const span = hiMax + 1 - loMin;
      // Decode rows (every query head of a kv head, at most 4 rows): up to NK_MAX adjacent kv heads per item,
      // one group of 4 rows each (padded), so that the item reads each key's K and V rows in one run.
      const perItem = ng === G && ng * nri <= 4 ? NK_MAX : 1;
      for (let hk = 0; hk < Hk; hk += perItem) {
        const nk = Math.min(perItem, Hk - hk);
        for (let g0 = 0; g0 < G; g0 += ng) {
          const ngi = Math.min(ng, G - g0),
            h0 = hk * G + g0,
            R = nk > 1 ? 4 * nk : ngi * nri,
            heads = ngi * nk;
          if (n === 0) {
            sink.item(q0, lq, k0, lk, h0, ngi, i0, nri, 0, 0, -1, 0, nk, R, 0);
            count++;
          } else if (R <= (nk > 1 ? SLOT_ROWS : SPLIT_MAX_ROWS) && span > SPLIT_MIN) {
            const splits = Math.ceil(span / SPLIT_KEYS);
            sink.parent(splits, slots);
            for (let c = 0; c < splits; c++) {
              const ks = loMin + c * SPLIT_KEYS,
                ke = Math.min(hiMax + 1, ks + SPLIT_KEYS);
              sink.item(
                q0,
                lq,
                k0,
                lk,
                h0,
                ngi,
                i0,
                nri,
                ks,
                ke,
                parents,
                slots + c,
                nk,
                pairsIn(ks, ke) * heads + R,
                c,
              );
            }
            parents++;
            slots += splits;
            count += splits;
          } else {
            sink.item(
              q0,
              lq,
              k0,
              lk,
              h0,
              ngi,
              i0,
              nri,
              loMin,
              hiMax + 1,
              -1,
              0,
              nk,
              pairsIn(loMin, hiMax + 1) * heads + R,
              0,
            );
            count++;
          }
        }
      }
    }
  }
  return { count, parents, slots };
}

const COUNT: Sink = { item() {}, parent() {} };

export type ItemCounts = Pick<ItemPlan, 'count' | 'parentCount' | 'slotCount'>;

/** How many work items, split parents and partial slots the problem has (no allocation proportional to it). */
export function countItems(p: Shape): ItemCounts {
  const c = walk(p, COUNT);
  return { count: c.count, parentCount: c.parents, slotCount: c.slots };
}

export function planItems(p: Shape): ItemPlan {
  const total = walk(p, COUNT);
  if (total.count > MAX_ITEMS) throw new RangeError(`a call of ${total.count} work items (more than ${MAX_ITEMS})`);
  const raw = new Int32Array(total.count * ITEM_INTS),
    costs = new Float64Array(total.count),
    splits = new Int32Array(total.count);
  const parents = new Int32Array(total.parents * PARENT_INTS);
  let at = 0,
    pat = 0;
  walk(p, {
    item(q0, lq, k0, lk, h0, ng, i0, nr, ks, ke, parent, slot, nk, cost, split) {
      const o = at * ITEM_INTS;
      raw[o + I_Q0] = q0;
      raw[o + I_LQ] = lq;
      raw[o + I_K0] = k0;
      raw[o + I_LK] = lk;
      raw[o + I_H0] = h0;
      raw[o + I_NG] = ng;
      raw[o + I_I0] = i0;
      raw[o + I_NR] = nr;
      raw[o + I_KS] = ks;
      raw[o + I_KE] = ke;
      raw[o + I_PARENT] = parent;
      raw[o + I_SLOT] = slot;
      raw[o + I_NK] = nk;
      splits[at] = split;
      costs[at++] = cost;
    },
    parent(splits, first) {
      const o = pat++ * PARENT_INTS;
      parents[o + PA_LEFT] = splits;
      parents[o + PA_SPLITS] = splits;
      parents[o + PA_FIRST] = first;
    },
  });
  const order = Uint32Array.from({ length: total.count }, (_, i) => i).sort(
    (a, b) => costs[b]! - costs[a]! || splits[a]! - splits[b]! || a - b,
  );
  const items = new Int32Array(raw.length);
  for (let dst = 0; dst < order.length; dst++)
    items.set(raw.subarray(order[dst]! * ITEM_INTS, (order[dst]! + 1) * ITEM_INTS), dst * ITEM_INTS);
  return { items, count: total.count, parents, parentCount: total.parents, slotCount: total.slots };
}
