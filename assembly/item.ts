// The work-item driver: every thread takes items from the shared counter until none are left,
// and runs each one start to finish (rows set up, Q staged, the key tiles, the item's end), so
// an item's result never depends on the thread that ran it.

import {
  BM, I_H0, I_I0, I_K0, I_KE, I_KS, I_LK, I_LQ, I_NG, I_NK, I_NR, I_PARENT, I_Q0, ITEM_INTS, P_BLOCK, P_COUNTER,
  P_ITEMS, P_K, P_NITEMS, P_Q, P_TABLE, P_V,
} from './abi';
import { splitDone, finish } from './combine';
import { pv, pvSafe, scaleP } from './pv';
import { isPaged, pageRows, rowAt } from './rows';
import { qk8, qkDirect, qkPrecise } from './scores';
import { HALF_FOLD_MAX, HALF_RAW_SCALE, isHalf } from './simd';
import { softmaxGeneral, softmaxMasked, softmaxPlain } from './softmax';
import { stageK, stageQ, stageV, stageVRaw } from './stage';
import {
  BN, PRECISE_BOUND, gAlibi, gCapMul, gD, gDp, gDv, gDvp, gH, gHk, gParams, gWl, gWr, headOf, rowOf, rowsPerKv,
  sDG, sFB, sGB, sHI, sKA, sL, sLO, sM, sO, sSL, sVA, sVS, vRow,
} from './state';

const ITEM_BYTES: usize = ITEM_INTS * 4;

/** Items from the shared counter, one at a time, until none are left. M: Flat or Paged (rows.ts). */
export function loop<T, M>(params: usize): void {
  const n = load<i32>(params + P_NITEMS * 4);
  const items = <usize>load<u32>(params + P_ITEMS * 4);
  while (true) {
    const i = atomic.add<i32>(params + P_COUNTER * 4, 1);
    if (i >= n) break;
    item<T, M>(items + <usize>i * ITEM_BYTES);
  }
}

/**
 * One work item: its rows, Q staged, every key tile some row sees, then its end (combine.ts).
 * Paged (a KV cache): k0 is the sequence's first block table entry, and each tile's K and V row
 * addresses come from the table (rows.ts); everything else is the same. A decode item of nk > 1 adjacent
 * kv heads (one group of 4 rows each) reads each key's rows of all of them in one run (qkDirect, stageV)
 * and adds P V per kv head.
 */
function item<T, M>(it: usize): void {
  const P = gParams;
  const q0 = load<i32>(it + I_Q0 * 4), Lq = load<i32>(it + I_LQ * 4), k0 = load<i32>(it + I_K0 * 4), Lk = load<i32>(it + I_LK * 4);
  const h0 = load<i32>(it + I_H0 * 4), ng = load<i32>(it + I_NG * 4), i0 = load<i32>(it + I_I0 * 4), nr = load<i32>(it + I_NR * 4);
  const ks = load<i32>(it + I_KS * 4), ke = load<i32>(it + I_KE * 4), nk = load<i32>(it + I_NK * 4);
  const RH = rowsPerKv(ng, nr, nk), R = nk * RH;
  const H = gH, D = gD, Dp = gDp, Dvp = gDvp;
  const esize = <usize>sizeof<T>();
  const group = H / gHk;
  const hk = h0 / group;

  // Rows: visible key range, diagonal, slope; Q^T staged (converted, pre-scaled; padding rows
  // and dims zero). Decode items (<= 4 rows per kv head) compute S straight from K rows and use sQR.
  const direct = RH <= 4;
  const qRows = direct ? nk * 4 : (R + 7) & ~7;
  let loMin: i32 = i32.MAX_VALUE, loMax: i32 = i32.MIN_VALUE, hiMin: i32 = i32.MAX_VALUE, hiMax: i32 = i32.MIN_VALUE;
  const qbase = <usize>load<u32>(P + P_Q * 4);
  for (let r = 0; r < BM; r++) {
    const h = r < R ? headOf(r, h0, ng, nr, RH) : -1;
    if (h < 0) { // padding
      store<i32>(sLO + <usize>r * 4, 1);
      store<i32>(sHI + <usize>r * 4, 0);
      store<f32>(sDG + <usize>r * 4, 0);
      store<f32>(sSL + <usize>r * 4, 0);
      continue;
    }
    const i = rowOf(r, i0, nr, RH);
    const d = i + Lk - Lq;
    const lo = gWl >= 0 ? max(0, d - gWl) : 0;
    const hi = gWr >= 0 ? min(Lk - 1, d + gWr) : Lk - 1;
    store<i32>(sLO + <usize>r * 4, lo);
    store<i32>(sHI + <usize>r * 4, hi);
    store<f32>(sDG + <usize>r * 4, <f32>d);
    store<f32>(sSL + <usize>r * 4, gAlibi != 0 ? load<f32>(gAlibi + <usize>h * 4) : 0);
    if (hi >= lo) {
      loMin = min(loMin, lo); loMax = max(loMax, lo);
      hiMin = min(hiMin, hi); hiMax = max(hiMax, hi);
    }
  }
  // Q^T, four rows at a time: 4 x 4 blocks loaded along d, transposed, stored along rows.
  const qn1 = stageQ<T>(qbase, q0, i0, h0, ng, nr, RH, R, qRows, direct);
  const qBound = qn1 * (gCapMul != 0 ? gCapMul : <f32>1);
  const foldQ = !isHalf<T>() || qn1 < HALF_FOLD_MAX;
  for (let r = 0; r < BM; r++) {
    store<f32>(sM + <usize>r * 4, -Infinity);
    store<f32>(sL + <usize>r * 4, 0);
  }
  memory.fill(sO, 0, <usize>((R + 3) & ~3) * <usize>Dvp * 4);

  // Key tiles of [ks, ke) that some row sees.
  const kb = <usize>load<u32>(P + P_K * 4), vb = <usize>load<u32>(P + P_V * 4);
  const kStride = <usize>gHk * <usize>D * esize, vStride = <usize>gHk * <usize>gDv * esize;
  const kHead = kb + (<usize>k0 * <usize>gHk + <usize>hk) * <usize>D * esize;
  const vHead = vb + (<usize>k0 * <usize>gHk + <usize>hk) * <usize>gDv * esize;
  const table = isPaged<M>() ? <usize>load<u32>(P + P_TABLE * 4) + <usize>k0 * 4 : 0;
  const bs = isPaged<M>() ? load<i32>(P + P_BLOCK * 4) : 0;
  const jStart = max(ks, loMin), jEnd = min(ke, hiMax + 1);
  const rv = (R + 3) >> 2;
  const flags = (gCapMul != 0 ? 1 : 0) | (gAlibi != 0 ? 2 : 0);
  // f32 values whose rows need no padding are staged by plain row copies on full tiles.
  const copyV = isFloat<T>() && (gDv & 7) == 0;
  const hbK = <usize>D * esize, hbV = <usize>gDv * esize;
  for (let j0 = jStart; j0 < jEnd; j0 += BN) {
    const n = min(BN, jEnd - j0);
    const full = n == BN && loMax <= j0 && hiMin >= j0 + BN - 1;
    const nkg = (n + 3) >> 2;
    let kTile: usize, vTile: usize;
    if (isPaged<M>()) {
      const kh = kb + <usize>hk * <usize>D * esize, vh = vb + <usize>hk * <usize>gDv * esize;
      pageRows(table, bs, j0, n, kh, kStride, vh, vStride);
      kTile = sKA;
      vTile = sVA;
    } else {
      kTile = kHead + <usize>j0 * kStride;
      vTile = vHead + <usize>j0 * vStride;
    }
    // Keys each group of 4 rows sees in this tile: boundary tiles skip what a group cannot see
    // (half of a causal diagonal tile).
    const gb = full ? sFB : groupBounds(rv, j0, n);
    if (direct) {
      // float16: qkDirect reads K raw against Q scaled by 2^112 (scores bit for bit the exact ones), which
      // needs max |q'| < 2^16 (far beyond the precision bound: such a Q takes qkPrecise anyway) and a tile
      // without Inf or NaN (max |k| is then Infinity)
      const kmax = foldQ ? qkDirect<T, M>(kTile, kStride, n, nk, vTile, vStride) : <f32>Infinity;
      if (kmax == Infinity || qBound * kmax > PRECISE_BOUND) {
        for (let k = 0; k < nk; k++) {
          stageK<T, M>(kTile, kStride, <usize>k * hbK, n);
          qkPrecise(k << 2, 4, nkg);
        }
      }
    } else {
      const kmax = stageK<T, M>(kTile, kStride, 0, n);
      if (qBound * kmax > PRECISE_BOUND) qkPrecise(0, rv << 2, nkg);
      else qk8((R + 7) >> 3, nkg, gb);
    }
    if (flags == 0) {
      if (full) softmaxPlain(rv, j0, n);
      else softmaxMasked(rv, j0, n);
    } else softmaxGeneral(rv, j0, n, !full, flags);
    // V staged: float32 rows copied whole on full tiles (P V walks 32-byte slices of them, which at the input's
    // stride, Hk * Dv * 4 bytes, would share a few L1 sets); float16 rows copied raw, converted by pv as it
    // loads them, unless the tile holds an Inf or a NaN; anything else converted exactly, and a boundary tile
    // whose V is not all finite goes to pvSafe.
    let raw = false;
    if (full && copyV) {
      const vb = <usize>nk * hbV, vr = vRow(nk, 4);
      for (let c = 0; c < BN; c++) memory.copy(sVS + <usize>c * vr, rowAt<M>(vTile, vStride, c), vb);
    } else if (isHalf<T>() && stageVRaw<M>(vTile, vStride, n, nk)) {
      raw = true;
      scaleP(rv, n, HALF_RAW_SCALE);
    } else if (stageV<T, M>(vTile, vStride, n, nk, !full)) {
      pvSafe(R, RH, j0, n, vRow(nk, 4));
      continue;
    }
    // each kv head's rows (a group of 4) against its part of the staged rows; one kv head: all groups at once
    if (raw) pvHeads<u16>(rv, nk, gb);
    else pvHeads<f32>(rv, nk, gb);
  }

  const parent = load<i32>(it + I_PARENT * 4);
  if (parent < 0) {
    finish<T>(it, sM, sL, sO, 1, 0);
    return;
  }
  splitDone<T>(it, parent, R);
}

/** P V of the item's groups of rows, over V staged as T (float32, or raw float16). */
// @ts-ignore: decorator
@inline function pvHeads<T>(rv: i32, nk: i32, gb: usize): void {
  const es = <usize>sizeof<T>(), vr = vRow(nk, es);
  if (nk == 1) pv<T>(0, rv, sVS, vr, gb);
  else for (let k = 0; k < nk; k++) pv<T>(k, k + 1, sVS + <usize>k * <usize>gDvp * es, vr, gb);
}

/** Per group of 4 rows: the first and last key of the tile (relative to j0) some row of it sees. */
function groupBounds(rv: i32, j0: i32, n: i32): usize {
  for (let g = 0; g < ((rv + 1) & ~1); g++) { // qk8 reads pairs of groups
    let lo: i32 = n, hi: i32 = -1;
    for (let r = g << 2; r < (g << 2) + 4; r++) {
      const l = load<i32>(sLO + <usize>r * 4), h = load<i32>(sHI + <usize>r * 4);
      if (h < l) continue; // sees nothing (or padding)
      lo = min(lo, max(l - j0, 0));
      hi = max(hi, min(h - j0, n - 1));
    }
    store<i32>(sGB + <usize>g * 8, lo);
    store<i32>(sGB + <usize>g * 8, hi, 4);
  }
  return sGB;
}
