/**
 * The wasm kernel's ABI, host side: the same names and values as assembly/abi.ts, which the
 * kernel is compiled with. Values are i32 slots (byte offset = slot * 4) of the params block, of
 * a work item and of a split parent. test/wasm-abi.test.ts compares the two files name by name,
 * so a constant changed or added on one side only fails it; this file holds nothing else.
 */

// ---- params block (PARAMS_INTS slots; slots after P_PAGED are zero) ----
export const PARAMS_INTS = 32;
/** Next item to take (atomic). */
export const P_COUNTER = 0;
export const P_NITEMS = 1;
/** Byte addresses of the items and of the inputs and outputs. */
export const P_ITEMS = 2;
export const P_Q = 3;
export const P_K = 4;
export const P_V = 5;
export const P_OUT = 6;
/** 0 = no lse. */
export const P_LSE = 7;
/** 0 = no ALiBi; slopes already multiplied by log2(e). */
export const P_ALIBI = 8;
export const P_H = 9;
export const P_HK = 10;
export const P_D = 11;
export const P_DV = 12;
/** A DTYPE_ code. */
export const P_DTYPE = 13;
/** f32: scale * log2(e), or scale / softcap with softcap. */
export const P_QMUL = 14;
/** f32: softcap * log2(e), 0 = no softcap. */
export const P_CAPMUL = 15;
/** Window left and right, -1 = unbounded. */
export const P_WL = 16;
export const P_WR = 17;
/** lse index = q0 * A + h * B + i. */
export const P_LSEA = 18;
export const P_LSEB = 19;
/** Per-thread scratch: thread t's at SCRATCH + t * SCRATCH_STRIDE. */
export const P_SCRATCH = 20;
export const P_SCRATCH_STRIDE = 21;
/** Splits' partial slots (the kernel's slotBytes(Dv) each). */
export const P_PARTIAL = 22;
export const P_PARENTS = 23;
/** 0 = no sinks; [H] f32 sink logits already multiplied by log2(e). */
export const P_SINKS = 24;
/** Paged calls (a KV cache): byte address of the block table (the call's copy, i32 block ids). */
export const P_TABLE = 25;
/** Paged calls: rows per block, and table entries per sequence (maxBlocksPerSeq). */
export const P_BLOCK = 26;
export const P_MAXBLOCKS = 27;
/** 1 = K and V rows read through the block table (I_K0 is then the sequence's table offset), 0 = contiguous. */
export const P_PAGED = 28;

// ---- dtype codes (P_DTYPE) ----
export const DTYPE_F32 = 0;
export const DTYPE_F16 = 1;
export const DTYPE_BF16 = 2;

// ---- work item (ITEM_INTS slots) ----
export const ITEM_INTS = 13;
/** First packed query row of the sequence. */
export const I_Q0 = 0;
export const I_LQ = 1;
/** First packed key row of the sequence; for a paged call, its first block table entry. */
export const I_K0 = 2;
export const I_LK = 3;
/** First query head, and query heads in the item. */
export const I_H0 = 4;
export const I_NG = 5;
/** First query row (in the sequence), and query rows per head. */
export const I_I0 = 6;
export const I_NR = 7;
/** Key range [ks, ke) in the sequence. */
export const I_KS = 8;
export const I_KE = 9;
/** -1, or the split parent this split belongs to; and the split's partial slot. */
export const I_PARENT = 10;
export const I_SLOT = 11;
/** kv heads in the item: > 1 for a decode item, whose rows are one group of 4 per kv head (padded). */
export const I_NK = 12;

// ---- split parent (PARENT_INTS slots) ----
export const PARENT_INTS = 4;
/** Splits still running (atomic): the split that takes it to 0 combines. */
export const PA_LEFT = 0;
export const PA_SPLITS = 1;
/** Slot of split 0; the splits' slots follow in order. */
export const PA_FIRST = 2;

// ---- tiling the plan follows ----
/** Virtual query rows per item. */
export const BM = 64;
/** Rows of a partial slot: split items have at most this many. */
export const SLOT_ROWS = 32;
/** kv heads a decode item may hold (4 rows each: SLOT_ROWS / 4). */
export const NK_MAX = 8;
