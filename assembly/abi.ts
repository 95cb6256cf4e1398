// The kernel's ABI: what the host (src/wasm/abi.ts, same names and values) writes into the shared
// memory before calling run(params, thread). Values are i32 slots (byte offset = slot * 4).
// test/wasm-abi.test.ts reads this file as text and compares it name by name with the host's, so
// keep one `export const NAME: i32 = VALUE;` per line.

// ---- params block (PARAMS_INTS slots; slots after P_PAGED are zero) ------------------------
export const PARAMS_INTS: i32 = 32;
export const P_COUNTER: i32 = 0; // next item to take (atomic)
export const P_NITEMS: i32 = 1;
export const P_ITEMS: i32 = 2; // byte address of the items
export const P_Q: i32 = 3;
export const P_K: i32 = 4;
export const P_V: i32 = 5;
export const P_OUT: i32 = 6;
export const P_LSE: i32 = 7; // 0 = no lse
export const P_ALIBI: i32 = 8; // 0 = no alibi; slopes already multiplied by log2(e)
export const P_H: i32 = 9;
export const P_HK: i32 = 10;
export const P_D: i32 = 11;
export const P_DV: i32 = 12;
export const P_DTYPE: i32 = 13; // a DTYPE_ code
export const P_QMUL: i32 = 14; // f32: scale * log2(e), or scale / softcap with softcap
export const P_CAPMUL: i32 = 15; // f32: softcap * log2(e), 0 = no softcap
export const P_WL: i32 = 16; // window left, -1 = unbounded
export const P_WR: i32 = 17; // window right, -1 = unbounded
export const P_LSEA: i32 = 18; // lse index = q0 * A + h * B + i
export const P_LSEB: i32 = 19;
export const P_SCRATCH: i32 = 20; // per-thread scratch: thread t's at SCRATCH + t * SCRATCH_STRIDE
export const P_SCRATCH_STRIDE: i32 = 21;
export const P_PARTIAL: i32 = 22; // splits' partial slots (slotBytes(Dv) each)
export const P_PARENTS: i32 = 23;
export const P_SINKS: i32 = 24; // 0 = no sinks; [H] f32 sink logits already multiplied by log2(e)
export const P_TABLE: i32 = 25; // paged calls: byte address of the block table (the call's copy, i32 block ids)
export const P_BLOCK: i32 = 26; // paged calls: rows per block
export const P_MAXBLOCKS: i32 = 27; // paged calls: table entries per sequence (maxBlocksPerSeq)
export const P_PAGED: i32 = 28; // 1 = K and V rows read through the block table (I_K0 is the sequence's table offset)

// ---- dtype codes (P_DTYPE) -----------------------------------------------------------------
export const DTYPE_F32: i32 = 0;
export const DTYPE_F16: i32 = 1;
export const DTYPE_BF16: i32 = 2;

// ---- work item (ITEM_INTS slots) -----------------------------------------------------------
export const ITEM_INTS: i32 = 13;
export const I_Q0: i32 = 0; // first packed query row of the sequence
export const I_LQ: i32 = 1;
export const I_K0: i32 = 2; // first packed key row of the sequence; paged: its first block table entry
export const I_LK: i32 = 3;
export const I_H0: i32 = 4; // first query head
export const I_NG: i32 = 5; // query heads in the item
export const I_I0: i32 = 6; // first query row (in the sequence)
export const I_NR: i32 = 7; // query rows per head
export const I_KS: i32 = 8; // key range [ks, ke) in the sequence
export const I_KE: i32 = 9;
export const I_PARENT: i32 = 10; // -1, or the split parent this split belongs to
export const I_SLOT: i32 = 11; // partial slot of this split
export const I_NK: i32 = 12; // kv heads in the item (> 1: a decode item, one group of 4 rows per kv head)

// ---- split parent (PARENT_INTS slots) ------------------------------------------------------
export const PARENT_INTS: i32 = 4;
export const PA_LEFT: i32 = 0; // splits still running (atomic): the one that takes it to 0 combines
export const PA_SPLITS: i32 = 1;
export const PA_FIRST: i32 = 2; // slot of split 0; the splits' slots follow in order

// ---- tiling the host plans with ------------------------------------------------------------
export const BM: i32 = 64; // virtual query rows per item
export const SLOT_ROWS: i32 = 32; // rows of a partial slot: split items have at most this many
export const NK_MAX: i32 = 8; // kv heads a decode item may hold (4 rows each: SLOT_ROWS / 4)
