/**
 * Splits a validated problem into the kernel's work items and lays out one call in the wasm
 * memory. Platform-neutral: no Node or browser API is used here.
 *
 * A work item is (sequence, query heads h0..h0+ng-1 sharing one kv head, query rows i0..i0+nr-1,
 * keys ks..ke-1). Sequences with at least BM query rows get one head per item and blocks of BM
 * rows; shorter ones stack up to BM / Lq heads of the same kv head into one item, so K and V are
 * read once per group (decode: 1 row x 4 heads = one item per kv head). Items with few rows and a
 * long key range are split into fixed CHUNK-key pieces whose partial results the kernel combines
 * in a fixed order: the split depends only on the problem, never on the thread count, so the
 * result is bitwise identical for every thread count. Items are ordered longest first so that the
 * threads taking them from the shared counter finish together.
 */
import type { Problem } from '../problem.js';
import { visibleRange } from '../problem.js';
import {
  BM, I_H0, I_I0, I_K0, I_KE, I_KS, I_LK, I_LQ, I_NG, I_NR, I_PARENT, I_Q0, I_SLOT, ITEM_INTS,
  PA_CHUNKS, PA_FIRST, PA_LEFT, PARAMS_INTS, PARENT_INTS, SLOT_ROWS,
} from './abi.js';

/** Split items have at most this many rows (the kernel's partial slot size). */
export const SPLIT_MAX_ROWS = SLOT_ROWS;
/** Keys per chunk of a split item, and the shortest key range that is split. */
export const CHUNK = 512;
export const SPLIT_MIN = 2 * CHUNK;

export interface ItemPlan {
  /** ITEM_INTS per item, longest first. */
  items: Int32Array;
  count: number;
  /** PARENT_INTS per split parent (PA_ slots: chunks left, chunk count, first slot). */
  parents: Int32Array;
  parentCount: number;
  slotCount: number;
}

interface Shape {
  batch: number; cuSeqlensQ: Int32Array; cuSeqlensK: Int32Array; numHeads: number; numKvHeads: number;
  windowLeft: number; windowRight: number;
}

/** An item's fields, by their slot names in abi.ts. */
interface Item {
  q0: number; lq: number; k0: number; lk: number; h0: number; ng: number; i0: number; nr: number;
  ks: number; ke: number; parent: number; slot: number;
}

function packItem(it: Item): Int32Array {
  const r = new Int32Array(ITEM_INTS);
  r[I_Q0] = it.q0; r[I_LQ] = it.lq; r[I_K0] = it.k0; r[I_LK] = it.lk;
  r[I_H0] = it.h0; r[I_NG] = it.ng; r[I_I0] = it.i0; r[I_NR] = it.nr;
  r[I_KS] = it.ks; r[I_KE] = it.ke; r[I_PARENT] = it.parent; r[I_SLOT] = it.slot;
  return r;
}

/** Heads per item and rows per head for a sequence of Lq query rows. */
function rowsOf(lq: number, group: number): { ng: number; nr: number } {
  return lq >= BM ? { ng: 1, nr: BM } : { ng: Math.min(group, Math.floor(BM / lq)), nr: lq };
}

export function planItems(p: Shape): ItemPlan {
  const H = p.numHeads, Hk = p.numKvHeads, G = H / Hk;
  const rows: Int32Array[] = [];
  const costs: number[] = [];
  const parents: number[] = [];
  let slots = 0;
  for (let b = 0; b < p.batch; b++) {
    const q0 = p.cuSeqlensQ[b]!, lq = p.cuSeqlensQ[b + 1]! - q0;
    const k0 = p.cuSeqlensK[b]!, lk = p.cuSeqlensK[b + 1]! - k0;
    if (lq === 0) continue;
    const { ng, nr } = rowsOf(lq, G);
    for (let i0 = 0; i0 < lq; i0 += nr) {
      const nri = Math.min(nr, lq - i0);
      // Keys some row of the block sees, and the pairs it keeps (the item's cost).
      let loMin = Infinity, hiMax = -Infinity;
      const ranges: [number, number][] = [];
      for (let i = i0; i < i0 + nri; i++) {
        const [lo, hi] = visibleRange(i, lq, lk, p.windowLeft, p.windowRight);
        if (hi >= lo) { loMin = Math.min(loMin, lo); hiMax = Math.max(hiMax, hi); ranges.push([lo, hi]); }
      }
      const pairsIn = (ks: number, ke: number) => {
        let n = 0;
        for (const [lo, hi] of ranges) n += Math.max(0, Math.min(hi + 1, ke) - Math.max(lo, ks));
        return n;
      };
      for (let hk = 0; hk < Hk; hk++) {
        for (let g0 = 0; g0 < G; g0 += ng) {
          const ngi = Math.min(ng, G - g0), h0 = hk * G + g0, R = ngi * nri;
          const base = { q0, lq, k0, lk, h0, ng: ngi, i0, nr: nri };
          if (ranges.length === 0) {
            rows.push(packItem({ ...base, ks: 0, ke: 0, parent: -1, slot: 0 }));
            costs.push(R);
            continue;
          }
          const span = hiMax + 1 - loMin;
          if (R <= SPLIT_MAX_ROWS && span > SPLIT_MIN) {
            const chunks = Math.ceil(span / CHUNK);
            const parent = parents.length / PARENT_INTS;
            const pa = new Array<number>(PARENT_INTS).fill(0);
            pa[PA_LEFT] = chunks; pa[PA_CHUNKS] = chunks; pa[PA_FIRST] = slots;
            parents.push(...pa);
            for (let c = 0; c < chunks; c++) {
              const ks = loMin + c * CHUNK, ke = Math.min(hiMax + 1, ks + CHUNK);
              rows.push(packItem({ ...base, ks, ke, parent, slot: slots + c }));
              costs.push(pairsIn(ks, ke) * ngi + R);
            }
            slots += chunks;
          } else {
            rows.push(packItem({ ...base, ks: loMin, ke: hiMax + 1, parent: -1, slot: 0 }));
            costs.push(pairsIn(loMin, hiMax + 1) * ngi + R);
          }
        }
      }
    }
  }
  const order = costs.map((_, i) => i).sort((a, b) => costs[b]! - costs[a]! || a - b);
  const items = new Int32Array(order.length * ITEM_INTS);
  order.forEach((src, dst) => items.set(rows[src]!, dst * ITEM_INTS));
  return { items, count: order.length, parents: Int32Array.from(parents), parentCount: parents.length / PARENT_INTS, slotCount: slots };
}

const align = (x: number, a = 64) => Math.ceil(x / a) * a;

export interface Layout {
  params: number; items: number; parents: number; alibi: number;
  q: number; k: number; v: number; out: number; lse: number;
  scratch: number; scratchStride: number; partial: number; slotBytes: number;
  end: number;
}

export interface KernelSizes {
  heapBase: number;
  scratchBytes(D: number, Dv: number): number;
  slotBytes(Dv: number): number;
}

type Dims = Pick<Problem<unknown>, 'dtype' | 'totalQ' | 'totalK' | 'numHeads' | 'numKvHeads' | 'headDim' | 'headDimV' | 'returnLse'> & { alibiSlopes: unknown };

/** Inputs already in the wasm memory (resident tensors): their byte offsets; the layout leaves them out. */
export interface ResidentInputs { q?: number; k?: number; v?: number }

/**
 * Byte offsets of one call in the wasm memory, from `base` (default: the kernel's heap base); `end` is
 * the memory it needs. `moveInputs` puts q, k and v after everything else instead (the driver
 * alternates the two places between calls with workers, so the calling thread does not write inputs
 * into lines the workers still cache). Inputs in `resident` take no room: their offsets are used as given.
 */
export function layout(
  p: Dims, k: KernelSizes, threads: number, itemCount: number, parentCount: number, slotCount: number, moveInputs = false,
  base = k.heapBase, resident: ResidentInputs = {},
): Layout {
  const es = p.dtype === 'float32' ? 4 : 2;
  let at = align(base);
  const take = (bytes: number) => { const o = at; at = align(at + bytes); return o; };
  const input = (at: number | undefined, bytes: number) => (at !== undefined ? at : take(bytes));
  const qBytes = p.totalQ * p.numHeads * p.headDim * es;
  const kBytes = p.totalK * p.numKvHeads * p.headDim * es;
  const vBytes = p.totalK * p.numKvHeads * p.headDimV * es;
  const params = take(PARAMS_INTS * 4);
  const items = take(itemCount * ITEM_INTS * 4);
  const parents = take(parentCount * PARENT_INTS * 4);
  const alibi = p.alibiSlopes ? take(p.numHeads * 4) : 0;
  const q = input(resident.q, qBytes);
  const kk = input(resident.k, kBytes);
  const v = input(resident.v, vBytes);
  const out = take(p.totalQ * p.numHeads * p.headDimV * es);
  const lse = p.returnLse ? take(p.totalQ * p.numHeads * 4) : 0;
  const scratchStride = k.scratchBytes(p.headDim, p.headDimV);
  const scratch = take(threads * scratchStride);
  const slotBytes = k.slotBytes(p.headDimV);
  const partial = take(slotCount * slotBytes);
  if (moveInputs) {
    const q2 = input(resident.q, qBytes);
    const k2 = input(resident.k, kBytes);
    const v2 = input(resident.v, vBytes);
    return { params, items, parents, alibi, q: q2, k: k2, v: v2, out, lse, scratch, scratchStride, partial, slotBytes, end: at };
  }
  return { params, items, parents, alibi, q, k: kk, v, out, lse, scratch, scratchStride, partial, slotBytes, end: at };
}

/** A region of the wasm memory held by a resident tensor. */
export interface Block { start: number; end: number; live: boolean }

/**
 * The wasm memory's resident regions, kept across calls: blocks sorted by offset above a floor (the
 * kernel's heap base). A call lays itself out in the first gap that fits it (or above the last block),
 * and so does a new block. The memory only grows, so offsets stay valid for a block's whole life.
 */
export class Regions {
  private readonly blocks: Block[] = [];
  constructor(private readonly floor: number) {}

  /** The lowest (64-byte aligned) offset from which `bytes` fit without touching a block. */
  fit(bytes: number): number {
    let at = align(this.floor);
    for (const b of this.blocks) {
      if (b.start >= at + bytes) return at;
      at = Math.max(at, align(b.end));
    }
    return at;
  }

  take(bytes: number): Block {
    const start = this.fit(bytes);
    const b: Block = { start, end: start + bytes, live: true };
    let i = 0;
    while (i < this.blocks.length && this.blocks[i]!.start <= start) i++;
    this.blocks.splice(i, 0, b);
    return b;
  }

  free(b: Block): void {
    if (!b.live) return;
    b.live = false;
    const i = this.blocks.indexOf(b);
    if (i >= 0) this.blocks.splice(i, 1);
  }

  /** Bytes held by live blocks. */
  get bytes(): number { return this.blocks.reduce((n, b) => n + b.end - b.start, 0); }
  get count(): number { return this.blocks.length; }
}
