// Where a key tile's K and V rows are. Two ways, chosen at compile time by a marker type argument M
// (like the dtype T, no runtime cost): Flat, rows `stride` bytes apart from the tile's first row
// (attention on K and V laid end to end, the code as it was before paging); Paged, each row's
// address read from a per-thread list that pageRows fills for the tile from the block table
// (attention over a KV cache: key position p of a sequence is row p % blockSize of block
// table[p / blockSize], so a tile may cross block boundaries anywhere, for any block size).

import { sKA, sVA } from './state';

/** Contiguous K and V rows. */
export type Flat = u32;
/** K and V rows through the block table. */
export type Paged = u64;

/** Whether M is the Paged marker (a compile-time constant). */
// @ts-ignore: decorator
@inline export function isPaged<M>(): bool {
  return sizeof<M>() == 8;
}

/** Row c of a tile: `src + c * stride` (Flat), or entry c of the address list at `src` (Paged). */
// @ts-ignore: decorator
@inline export function rowAt<M>(src: usize, stride: usize, c: i32): usize {
  if (isPaged<M>()) return <usize>load<u32>(src + (<usize>c << 2));
  return src + <usize>c * stride;
}

/**
 * The addresses of key positions j0 .. j0 + n - 1 of a paged sequence into sKA (K rows) and sVA
 * (V rows). `table` is the sequence's first block table entry; kHead / vHead are the kv head's
 * offsets in cache row 0, kStride / vStride the bytes of one cache row. Only the blocks that hold
 * these positions are read (a sequence's table entries past its last block may be anything).
 */
export function pageRows(
  table: usize, bs: i32, j0: i32, n: i32, kHead: usize, kStride: usize, vHead: usize, vStride: usize,
): void {
  let blk = j0 / bs, r = j0 - blk * bs;
  let row = <usize>load<i32>(table + <usize>blk * 4) * <usize>bs + <usize>r;
  for (let c = 0; c < n; c++) {
    store<u32>(sKA + (<usize>c << 2), <u32>(kHead + row * kStride));
    store<u32>(sVA + (<usize>c << 2), <u32>(vHead + row * vStride));
    row++;
    if (++r == bs && c + 1 < n) {
      r = 0;
      blk++;
      row = <usize>load<i32>(table + <usize>blk * 4) * <usize>bs;
    }
  }
}
