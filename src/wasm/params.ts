/** The params block of one call (assembly/abi.ts's P_ slots), written by name. */
import type { Problem } from '../problem.js';
import type { AnyTensor } from '../types.js';
import {
  DTYPE_BF16,
  DTYPE_F16,
  DTYPE_F32,
  P_ALIBI,
  P_BLOCK,
  P_CAPMUL,
  P_D,
  P_DTYPE,
  P_DV,
  P_H,
  P_HK,
  P_ITEMS,
  P_K,
  P_LSE,
  P_LSEA,
  P_LSEB,
  P_MAXBLOCKS,
  P_NITEMS,
  P_OUT,
  P_PAGED,
  P_PARENTS,
  P_PARTIAL,
  P_Q,
  P_QMUL,
  P_SCRATCH,
  P_SCRATCH_STRIDE,
  P_SINKS,
  P_TABLE,
  P_V,
  P_WL,
  P_WR,
} from './abi.js';
import type { Layout, Paging } from './plan.js';

export const DTYPE_CODE = { float32: DTYPE_F32, float16: DTYPE_F16, bfloat16: DTYPE_BF16 } as const;

/** Fills `i32` (the call's params block); P_COUNTER and the unused slots start at 0. `paging`: a KV cache call. */
export function writeParams(
  i32: Int32Array,
  p: Problem<AnyTensor>,
  lay: Layout,
  itemCount: number,
  paging: Paging | null = null,
): void {
  const f32 = new Float32Array(i32.buffer, i32.byteOffset, i32.length);
  const cap = p.softcap > 0;
  i32.fill(0);
  i32[P_NITEMS] = itemCount;
  i32[P_ITEMS] = lay.items;
  i32[P_Q] = lay.q;
  i32[P_K] = lay.k;
  i32[P_V] = lay.v;
  i32[P_OUT] = lay.out;
  i32[P_LSE] = lay.lse;
  i32[P_ALIBI] = lay.alibi;
  i32[P_H] = p.numHeads;
  i32[P_HK] = p.numKvHeads;
  i32[P_D] = p.headDim;
  i32[P_DV] = p.headDimV;
  i32[P_DTYPE] = DTYPE_CODE[p.dtype];
  f32[P_QMUL] = cap ? p.softmaxScale / p.softcap : p.softmaxScale * Math.LOG2E;
  f32[P_CAPMUL] = cap ? p.softcap * Math.LOG2E : 0;
  i32[P_WL] = p.windowLeft;
  i32[P_WR] = p.windowRight;
  // lse is [H, totalQ] for packed q, [batch, H, Lq] for fixed-length q: index q0 * A + h * B + i
  i32[P_LSEA] = p.fixedSeqlenQ > 0 ? p.numHeads : 1;
  i32[P_LSEB] = p.fixedSeqlenQ > 0 ? p.fixedSeqlenQ : p.totalQ;
  i32[P_SCRATCH] = lay.scratch;
  i32[P_SCRATCH_STRIDE] = lay.scratchStride;
  i32[P_PARTIAL] = lay.partial;
  i32[P_PARENTS] = lay.parents;
  i32[P_SINKS] = lay.sinks;
  // K and V read through the block table (the item's key offset is the sequence's first entry)
  i32[P_PAGED] = paging ? 1 : 0;
  i32[P_TABLE] = lay.table;
  i32[P_BLOCK] = paging ? paging.blockSize : 0;
  i32[P_MAXBLOCKS] = paging ? paging.maxBlocksPerSeq : 0;
}
