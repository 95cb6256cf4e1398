// FlashAttention-2 forward for WebAssembly SIMD.
//
// One kernel body. A work item is (sequence, one query head or a group of query heads sharing a
// kv head, a block of up to BM query rows, a range of keys). Its "virtual rows" r = g * nr + ri
// stack the group's heads, so a decode step (Lq = 1) with 4 query heads per kv head is one
// 4-row item that reads K and V once. For each key tile of BN keys the kernel
//   1. stages K (converted to float32 as it is loaded) as [key/4][d][4 keys] and V as [key][dv]
//      (float32 V by row copies on full tiles),
//   2. computes S^T = K Q^T into a [key][row] tile (8 rows x 4 keys register micro-tile; items
//      of <= 4 rows instead take dot products straight from the K rows, unstaged; a tile whose
//      scores are too large for float32 sums is redone in float64),
//   3. applies softcap / ALiBi / the mask (bitselect, boundary tiles only) and the online softmax
//      in the log2 domain, four rows per vector (running max m, sum l, rescale factor corr),
//   4. adds P V into the row-major accumulator O (4 rows x 8 dims micro-tile), rescaled by corr.
// At the end each row is normalised once (or, for an item that is one split of a key
// range, its partial (m, l, O) is stored and the last split to finish combines all splits in
// their fixed order). Nothing of size Lq x Lk exists; scratch is O(tile) per thread.
//
// Variants come from this one body: the dtype (generic T: f32, u16 = float16, i16 = bfloat16),
// how K and V rows are found (generic M: Flat, rows laid end to end; Paged, through a KV cache's
// block table, P_PAGED; rows.ts), the S path (8-row tile or direct dot products), masked or full
// tiles, the score transforms (constant arguments of @inline functions), and baseline vs relaxed
// SIMD (ASC_FEATURE_RELAXED_SIMD).
//
// The kernel allocates nothing: the host lays out params, items, inputs, outputs and per-thread
// scratch in the shared memory (abi.ts) and calls run(params, thread) on every thread; items are
// taken from an atomic counter in params.
//
// Files: abi.ts (what the host writes), state.ts (per-thread globals, scratch layout), item.ts
// (the work-item driver), stage.ts (1), scores.ts (2), softmax.ts (3), pv.ts (4), combine.ts
// (the item's end, splits merged), rows.ts (K and V row addresses, contiguous or paged),
// simd.ts (exp2, tanh, conversions, lane shuffles).

import { DTYPE_F16, DTYPE_F32, P_DTYPE, P_PAGED, SLOT_ROWS } from './abi';
import { loop } from './item';
import { Flat, Paged } from './rows';
import { setup } from './state';

export { scratchBytes, slotBytes } from './state';

export function heapBase(): usize {
  return __heap_base;
}

export function slotRows(): i32 {
  return SLOT_ROWS;
}

/** Runs work items until the shared counter is exhausted. Every thread calls this. */
export function run(params: usize, thread: i32): void {
  setup(params, thread);
  const dtype = load<i32>(params + P_DTYPE * 4);
  if (load<i32>(params + P_PAGED * 4) != 0) { // K and V through the block table (a KV cache)
    if (dtype == DTYPE_F32) loop<f32, Paged>(params);
    else if (dtype == DTYPE_F16) loop<u16, Paged>(params);
    else loop<i16, Paged>(params);
  } else if (dtype == DTYPE_F32) loop<f32, Flat>(params);
  else if (dtype == DTYPE_F16) loop<u16, Flat>(params);
  else loop<i16, Flat>(params);
}
