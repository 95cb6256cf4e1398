/**
 * Lays out one call in the wasm memory (the work items themselves: items.ts) and keeps the resident
 * tensors' regions. Platform-neutral: no Node or browser API is used here.
 */
import type { Problem } from '../problem.js';
import { ITEM_INTS, PARAMS_INTS, PARENT_INTS } from './abi.js';

export {
  SPLIT_KEYS,
  type ItemCounts,
  type ItemPlan,
  type Paging,
  MAX_ITEMS,
  SPLIT_MAX_ROWS,
  SPLIT_MIN,
  countItems,
  planItems,
} from './items.js';

const align = (x: number, a = 64) => Math.ceil(x / a) * a;

export interface Layout {
  params: number;
  items: number;
  parents: number;
  alibi: number;
  sinks: number;
  /** A paged call's copy of the block table (0 for other calls). */
  table: number;
  q: number;
  k: number;
  v: number;
  out: number;
  lse: number;
  scratch: number;
  scratchStride: number;
  partial: number;
  slotBytes: number;
  end: number;
}

export interface KernelSizes {
  heapBase: number;
  scratchBytes(D: number, Dv: number): number;
  slotBytes(Dv: number): number;
}

type Dims = Pick<
  Problem<unknown>,
  'dtype' | 'totalQ' | 'totalK' | 'numHeads' | 'numKvHeads' | 'headDim' | 'headDimV' | 'returnLse'
> & { alibiSlopes: unknown; sinks: unknown };

/** Inputs already in the wasm memory (resident tensors): their byte offsets; the layout leaves them out. */
export interface ResidentInputs {
  q?: number;
  k?: number;
  v?: number;
}

/**
 * Byte offsets of one call in the wasm memory, from `base` (default: the kernel's heap base); `end` is
 * the memory it needs. `moveInputs` puts q, k and v after everything else instead (the driver
 * alternates the two places between calls with workers, so the calling thread does not write inputs
 * into lines the workers still cache). Inputs in `resident` take no room: their offsets are used as given.
 * A paged call (a KV cache) has `tableInts` block table entries, copied after the slopes.
 */
export function layout(
  p: Dims,
  k: KernelSizes,
  threads: number,
  itemCount: number,
  parentCount: number,
  slotCount: number,
  moveInputs = false,
  base = k.heapBase,
  resident: ResidentInputs = {},
  tableInts = 0,
): Layout {
  const es = p.dtype === 'float32' ? 4 : 2;
  let at = align(base);
  const take = (bytes: number) => {
    const o = at;
    at = align(at + bytes);
    return o;
  };
  const input = (at: number | undefined, bytes: number) => (at !== undefined ? at : take(bytes));
  const qBytes = p.totalQ * p.numHeads * p.headDim * es;
  const kBytes = p.totalK * p.numKvHeads * p.headDim * es;
  const vBytes = p.totalK * p.numKvHeads * p.headDimV * es;
  const params = take(PARAMS_INTS * 4);
  const items = take(itemCount * ITEM_INTS * 4);
  const parents = take(parentCount * PARENT_INTS * 4);
  const alibi = p.alibiSlopes ? take(p.numHeads * 4) : 0;
  const sinks = p.sinks ? take(p.numHeads * 4) : 0;
  const table = tableInts > 0 ? take(tableInts * 4) : 0;
  const q = input(resident.q, qBytes);
  const kk = input(resident.k, kBytes);
  const v = input(resident.v, vBytes);
  const out = take(p.totalQ * p.numHeads * p.headDimV * es);
  const lse = p.returnLse ? take(p.totalQ * p.numHeads * 4) : 0;
  const scratchStride = k.scratchBytes(p.headDim, p.headDimV);
  const scratch = take(threads * scratchStride);
  const slotBytes = k.slotBytes(p.headDimV);
  const partial = take(slotCount * slotBytes);
  // moveInputs: q, k and v after everything else (their first places stay reserved, so the offsets of
  // everything before them are the same in both layouts).
  const [q2, k2, v2] = moveInputs
    ? [input(resident.q, qBytes), input(resident.k, kBytes), input(resident.v, vBytes)]
    : [q, kk, v];
  return {
    params,
    items,
    parents,
    alibi,
    sinks,
    table,
    q: q2,
    k: k2,
    v: v2,
    out,
    lse,
    scratch,
    scratchStride,
    partial,
    slotBytes,
    end: at,
  };
}

/** A region of the wasm memory held by a resident tensor. */
export interface Block {
  start: number;
  end: number;
  live: boolean;
}

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
  get bytes(): number {
    return this.blocks.reduce((n, b) => n + b.end - b.start, 0);
  }
  get count(): number {
    return this.blocks.length;
  }
}
