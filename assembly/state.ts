// Per-thread state and the scratch layout. Wasm globals are per instance, and every thread has
// its own instance of the module, so these are thread-local without any indexing. setup() is the
// only writer: every other file reads them.

import {
  BM, NK_MAX, P_ALIBI, P_CAPMUL, P_D, P_DV, P_H, P_HK, P_QMUL, P_SCRATCH, P_SCRATCH_STRIDE, P_WL, P_WR, SLOT_ROWS,
} from './abi';
import { HALF_MASK } from './simd';

export const BN: i32 = 64; // keys per tile
export const LN2: f64 = 0.6931471805599453;
// Row strides of the [x][BM] tiles, padded by 16 bytes: with 256-byte rows, 64 rows fall into
// 16 of L1's 64 sets, and S^T, V and Q^T (16 KiB apart) competed for the same ones.
export const SROW: usize = BM * 4 + 16; // S^T / P^T row (one key)
export const QROW: usize = BM * 4 + 16; // Q^T row (one dim)
// When max_r ||q'_r||_1 * max |k| (log2-domain score units) exceeds this, a float32 dot product
// can be off by more than the contract allows (1e-4 at scores in the hundreds): the tile's scores
// are then accumulated in float64 (qkPrecise). Unit-scale inputs stay far below it (< 100).
export const PRECISE_BOUND: f32 = 512;

export let gParams: usize = 0;
export let gH: i32 = 0;
export let gHk: i32 = 0;
export let gD: i32 = 0;
export let gDp: i32 = 0; // D rounded up to 4
export let gDv: i32 = 0;
export let gDvp: i32 = 0; // Dv rounded up to 8
export let gWl: i32 = -1;
export let gWr: i32 = -1;
export let gQmul: f32 = 1;
export let gCapMul: f32 = 0;
export let gAlibi: usize = 0;
// scratch regions
export let sQT: usize = 0; // [Dp][BM] pre-scaled Q^T
export let sQR: usize = 0; // [NK_MAX][Dp/4][4 rows][4] pre-scaled Q, row-major by 4 dims, per kv head (decode items)
export let sKI: usize = 0; // [BN/4][Dp][4] K, four keys interleaved
export let sVS: usize = 0; // [BN][nk][Dvp] V (float32, or raw float16), rows vRow(nk, es) bytes apart
export let sST: usize = 0; // [BN][BM] S^T, then P^T
export let sO: usize = 0; // [BM][Dvp] accumulator
export let sM: usize = 0; // [BM] running max (log2 domain)
export let sL: usize = 0; // [BM] running sum
export let sCorr: usize = 0; // [BM] rescale factor of the current tile
export let sLO: usize = 0; // [BM] i32 first visible key
export let sHI: usize = 0; // [BM] i32 last visible key
export let sDG: usize = 0; // [BM] f32 diagonal d(i)
export let sSL: usize = 0; // [BM] f32 alibi slope (log2 domain)
export let sGB: usize = 0; // [BM/4][2] i32: keys (relative to the tile) each group of 4 rows sees, first and last
export let sFB: usize = 0; // the same for a full tile: 0 and BN-1 for every group
export let sKA: usize = 0; // [BN] u32: a paged tile's K row addresses (rows.ts)
export let sVA: usize = 0; // [BN] u32: its V row addresses
export let sSink: usize = 0; // 16 bytes: where qkDirect leaves the V rows it touched ahead of stageVRaw
export let sMask: usize = 0; // 16 bytes: HALF_MASK in every lane (simd.ts, h2fRaw)

// @ts-ignore: decorator
@inline function align(x: u32, a: u32): u32 {
  return (x + a - 1) & ~(a - 1);
}

/**
 * Bytes of one staged V row (sVS) of an item of nk kv heads: their Dvp values of `es` bytes each (4: float32,
 * 2: raw float16), padded by 16 bytes like SROW (at 2-4 KiB strides the tile's rows would share a few L1 sets).
 */
// @ts-ignore: decorator
@inline export function vRow(nk: i32, es: usize): usize {
  return <usize>nk * <usize>gDvp * es + 16;
}

/**
 * Virtual rows of an item, by kv head: an item of nk > 1 kv heads (decode) gives each one group of 4 rows, the
 * first ng * nr of them real and the rest padding; an item of one kv head has ng * nr rows. Returns the rows
 * per kv head (RH); the item has nk * RH rows.
 */
// @ts-ignore: decorator
@inline export function rowsPerKv(ng: i32, nr: i32, nk: i32): i32 {
  return nk > 1 ? 4 : ng * nr;
}

/** Query head of virtual row r (rows of head h0 + g first, g = 0 .. ng-1, then the next kv head's), -1 for padding. */
// @ts-ignore: decorator
@inline export function headOf(r: i32, h0: i32, ng: i32, nr: i32, RH: i32): i32 {
  const kv = r / RH, rr = r - kv * RH;
  return rr < ng * nr ? h0 + kv * ng + rr / nr : -1;
}

/** Query row (in the sequence) of virtual row r. */
// @ts-ignore: decorator
@inline export function rowOf(r: i32, i0: i32, nr: i32, RH: i32): i32 {
  return i0 + (r % RH) % nr;
}

/** Bytes of scratch one thread needs for head dims D, Dv; setup() carves them in this order. */
export function scratchBytes(D: i32, Dv: i32): u32 {
  const Dp = align(<u32>D, 4), Dvp = align(<u32>Dv, 8);
  return align(Dp * <u32>QROW + NK_MAX * Dp * 16 + BN * Dp * 4 + BN * (NK_MAX * Dvp * 4 + 16) + BN * <u32>SROW + BM * Dvp * 4 + 8 * BM * 4 + BM * 4 + 2 * BN * 4 + 32, 64);
}

/** Bytes of one partial slot (m, l and O of SLOT_ROWS rows) of a split item. */
export function slotBytes(Dv: i32): u32 {
  return align(<u32>(SLOT_ROWS * (2 + <i32>align(<u32>Dv, 8))) * 4, 64);
}

export function setup(params: usize, thread: i32): void {
  gParams = params;
  gH = load<i32>(params + P_H * 4);
  gHk = load<i32>(params + P_HK * 4);
  gD = load<i32>(params + P_D * 4);
  gDv = load<i32>(params + P_DV * 4);
  gDp = <i32>align(<u32>gD, 4);
  gDvp = <i32>align(<u32>gDv, 8);
  gWl = load<i32>(params + P_WL * 4);
  gWr = load<i32>(params + P_WR * 4);
  gQmul = load<f32>(params + P_QMUL * 4);
  gCapMul = load<f32>(params + P_CAPMUL * 4);
  gAlibi = load<u32>(params + P_ALIBI * 4);
  let s: usize = <usize>load<u32>(params + P_SCRATCH * 4) + <usize>thread * <usize>load<u32>(params + P_SCRATCH_STRIDE * 4);
  const Dp = <usize>gDp, Dvp = <usize>gDvp;
  sQT = s; s += Dp * QROW;
  sQR = s; s += <usize>NK_MAX * Dp * 16;
  sKI = s; s += Dp * BN * 4;
  sVS = s; s += vRow(NK_MAX, 4) * BN;
  sST = s; s += SROW * BN;
  sO = s; s += Dvp * BM * 4;
  sM = s; s += BM * 4;
  sL = s; s += BM * 4;
  sCorr = s; s += BM * 4;
  sLO = s; s += BM * 4;
  sHI = s; s += BM * 4;
  sDG = s; s += BM * 4;
  sSL = s; s += BM * 4;
  sGB = s; s += BM / 2 * 4;
  sFB = s; s += BM / 4 * 8;
  sKA = s; s += BN * 4;
  sVA = s; s += BN * 4;
  sSink = s; s += 16;
  sMask = s;
  v128.store(sMask, i32x4.splat(HALF_MASK));
  for (let g = 0; g < BM / 4; g++) {
    store<i32>(sFB + <usize>g * 8, 0);
    store<i32>(sFB + <usize>g * 8, BN - 1, 4);
  }
}
