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
//      in the log2 domain, four rows per vector (running max m, sum l, rescale factor alpha),
//   4. adds P V into the row-major accumulator O (4 rows x 8 dims micro-tile), rescaled by alpha.
// At the end each row is normalised once (or, for an item that is one chunk of a split key
// range, its partial (m, l, O) is stored and the last chunk to finish combines all chunks in
// their fixed order). Nothing of size Lq x Lk exists; scratch is O(tile) per thread.
//
// Variants come from this one body: the dtype (generic T: f32, u16 = float16, i16 = bfloat16),
// the S path (8-row tile or direct dot products), masked or full tiles, the score transforms (constant
// arguments of @inline functions), and baseline vs relaxed SIMD (ASC_FEATURE_RELAXED_SIMD).
//
// The kernel allocates nothing: the host lays out params, items, inputs, outputs and per-thread
// scratch in the shared memory and calls run(params, thread) on every thread; items are taken
// from an atomic counter in params.

import { exp2v, ld, ld4, madd, st, tanhv } from './simd';

const BM: i32 = 64; // virtual query rows per item
const BN: i32 = 64; // keys per tile
const LN2: f64 = 0.6931471805599453;
// Row strides of the [x][BM] tiles, padded by 16 bytes: with 256-byte rows, 64 rows fall into
// 16 of L1's 64 sets, and S^T, V and Q^T (16 KiB apart) competed for the same ones.
const SROW: usize = BM * 4 + 16; // S^T / P^T row (one key)
const QROW: usize = BM * 4 + 16; // Q^T row (one dim)
const SLOT_ROWS: i32 = 16; // rows of a split item's partial slot (split items have <= 16 rows)
// When max_r ||q'_r||_1 * max |k| (log2-domain score units) exceeds this, a float32 dot product
// can be off by more than the contract allows (1e-4 at scores in the hundreds): the tile's scores
// are then accumulated in float64 (qkPrecise). Unit-scale inputs stay far below it (< 100).
const PRECISE_BOUND: f32 = 512;

// ---- params block (byte offsets), written by the host -------------------------------------
const P_COUNTER = 0;
const P_NITEMS = 4;
const P_ITEMS = 8;
const P_Q = 12;
const P_K = 16;
const P_V = 20;
const P_OUT = 24;
const P_LSE = 28; // 0 = no lse
const P_ALIBI = 32; // 0 = no alibi; slopes already multiplied by log2(e)
const P_H = 36;
const P_HK = 40;
const P_D = 44;
const P_DV = 48;
const P_DTYPE = 52; // 0 float32, 1 float16, 2 bfloat16
const P_QMUL = 56; // f32: scale * log2(e), or scale / softcap with softcap
const P_CAPMUL = 60; // f32: softcap * log2(e), 0 = no softcap
const P_WL = 64;
const P_WR = 68;
const P_LSEA = 72; // lse index = q0 * A + h * B + i
const P_LSEB = 76;
const P_SCRATCH = 80;
const P_SCRATCH_STRIDE = 84;
const P_PARTIAL = 88;
const P_PARENTS = 92;

// ---- work item (12 x i32) -------------------------------------------------------------------
const ITEM_BYTES: usize = 48;
const I_Q0 = 0; // first packed query row of the sequence
const I_LQ = 4;
const I_K0 = 8; // first packed key row of the sequence
const I_LK = 12;
const I_H0 = 16; // first query head
const I_NG = 20; // query heads in the item
const I_I0 = 24; // first query row (in the sequence)
const I_NR = 28; // query rows per head
const I_KS = 32; // key range [ks, ke) in the sequence
const I_KE = 36;
const I_PARENT = 40; // -1, or the split parent this chunk belongs to
const I_SLOT = 44; // partial slot of this chunk

// ---- split parent (4 x i32) -----------------------------------------------------------------
const PARENT_BYTES: usize = 16;
// 0: chunks still running (atomic), 4: number of chunks, 8: first slot

// ---- per-thread state (wasm globals are per instance, i.e. per thread) -----------------------
let gParams: usize = 0;
let gH: i32 = 0;
let gHk: i32 = 0;
let gD: i32 = 0;
let gDp: i32 = 0; // D rounded up to 4
let gDv: i32 = 0;
let gDvp: i32 = 0; // Dv rounded up to 8
let gVROW: usize = 0; // staged V row bytes (padded like SROW)
let gWl: i32 = -1;
let gWr: i32 = -1;
let gQmul: f32 = 1;
let gCapMul: f32 = 0;
let gAlibi: usize = 0;
// scratch regions
let sQT: usize = 0; // [Dp][BM] pre-scaled Q^T
let sQR: usize = 0; // [Dp/4][4 rows][4] pre-scaled Q, row-major by 4 dims (items of <= 4 rows)
let sKI: usize = 0; // [BN/4][Dp][4] K, four keys interleaved
let sVS: usize = 0; // [BN][Dvp] V
let sST: usize = 0; // [BN][BM] S^T, then P^T
let sO: usize = 0; // [BM][Dvp] accumulator
let sM: usize = 0; // [BM] running max (log2 domain)
let sL: usize = 0; // [BM] running sum
let sA: usize = 0; // [BM] rescale factor of the current tile
let sLO: usize = 0; // [BM] i32 first visible key
let sHI: usize = 0; // [BM] i32 last visible key
let sDG: usize = 0; // [BM] f32 diagonal d(i)
let sSL: usize = 0; // [BM] f32 alibi slope (log2 domain)
let sGB: usize = 0; // [BM/4][2] i32: keys (relative to the tile) each group of 4 rows sees, first and last
let sFB: usize = 0; // the same for a full tile: 0 and BN-1 for every group

// @ts-ignore: decorator
@inline function align(x: u32, a: u32): u32 {
  return (x + a - 1) & ~(a - 1);
}

/** Bytes of scratch one thread needs for head dims D, Dv. */
export function scratchBytes(D: i32, Dv: i32): u32 {
  const Dp = align(<u32>D, 4), Dvp = align(<u32>Dv, 8);
  return align(Dp * <u32>QROW + Dp * 16 + BN * Dp * 4 + BN * (Dvp * 4 + 16) + BN * <u32>SROW + BM * Dvp * 4 + 8 * BM * 4 + BM * 4, 64);
}

/** Bytes of one partial slot (m, l and O of SLOT_ROWS rows) of a split item. */
export function slotBytes(Dv: i32): u32 {
  return align(<u32>(SLOT_ROWS * (2 + <i32>align(<u32>Dv, 8))) * 4, 64);
}

export function heapBase(): usize {
  return __heap_base;
}

export function slotRows(): i32 {
  return SLOT_ROWS;
}

function setup(params: usize, thread: i32): void {
  gParams = params;
  gH = load<i32>(params + P_H);
  gHk = load<i32>(params + P_HK);
  gD = load<i32>(params + P_D);
  gDv = load<i32>(params + P_DV);
  gDp = <i32>align(<u32>gD, 4);
  gDvp = <i32>align(<u32>gDv, 8);
  gWl = load<i32>(params + P_WL);
  gWr = load<i32>(params + P_WR);
  gQmul = load<f32>(params + P_QMUL);
  gCapMul = load<f32>(params + P_CAPMUL);
  gAlibi = load<u32>(params + P_ALIBI);
  let s: usize = <usize>load<u32>(params + P_SCRATCH) + <usize>thread * <usize>load<u32>(params + P_SCRATCH_STRIDE);
  const Dp = <usize>gDp, Dvp = <usize>gDvp;
  gVROW = Dvp * 4 + 16;
  sQT = s; s += Dp * QROW;
  sQR = s; s += Dp * 16;
  sKI = s; s += Dp * BN * 4;
  sVS = s; s += gVROW * BN;
  sST = s; s += SROW * BN;
  sO = s; s += Dvp * BM * 4;
  sM = s; s += BM * 4;
  sL = s; s += BM * 4;
  sA = s; s += BM * 4;
  sLO = s; s += BM * 4;
  sHI = s; s += BM * 4;
  sDG = s; s += BM * 4;
  sSL = s; s += BM * 4;
  sGB = s; s += BM / 2 * 4;
  sFB = s;
  for (let g = 0; g < BM / 4; g++) {
    store<i32>(sFB + <usize>g * 8, 0);
    store<i32>(sFB + <usize>g * 8, BN - 1, 4);
  }
}

/** Runs work items until the shared counter is exhausted. Every thread calls this. */
export function run(params: usize, thread: i32): void {
  setup(params, thread);
  const dtype = load<i32>(params + P_DTYPE);
  if (dtype == 0) loop<f32>(params);
  else if (dtype == 1) loop<u16>(params);
  else loop<i16>(params);
}

function loop<T>(params: usize): void {
  const n = load<i32>(params + P_NITEMS);
  const items = <usize>load<u32>(params + P_ITEMS);
  while (true) {
    const i = atomic.add<i32>(params + P_COUNTER, 1);
    if (i >= n) break;
    item<T>(items + <usize>i * ITEM_BYTES);
  }
}

// ---- one work item ------------------------------------------------------------------------

function item<T>(it: usize): void {
  const P = gParams;
  const q0 = load<i32>(it + I_Q0), Lq = load<i32>(it + I_LQ), k0 = load<i32>(it + I_K0), Lk = load<i32>(it + I_LK);
  const h0 = load<i32>(it + I_H0), ng = load<i32>(it + I_NG), i0 = load<i32>(it + I_I0), nr = load<i32>(it + I_NR);
  const ks = load<i32>(it + I_KS), ke = load<i32>(it + I_KE);
  const R = ng * nr;
  const H = gH, D = gD, Dp = gDp, Dvp = gDvp;
  const esize = <usize>sizeof<T>();
  const group = H / gHk;
  const hk = h0 / group;

  // Rows: visible key range, diagonal, slope; Q^T staged (converted, pre-scaled; padding rows
  // and dims zero). Items of <= 4 rows (decode) compute S straight from K rows and use sQR.
  const direct = R <= 4;
  const qRows = direct ? 4 : (R + 7) & ~7;
  let loMin: i32 = i32.MAX_VALUE, loMax: i32 = i32.MIN_VALUE, hiMin: i32 = i32.MAX_VALUE, hiMax: i32 = i32.MIN_VALUE;
  const qbase = <usize>load<u32>(P + P_Q);
  for (let r = 0; r < BM; r++) {
    if (r >= R) {
      store<i32>(sLO + <usize>r * 4, 1);
      store<i32>(sHI + <usize>r * 4, 0);
      store<f32>(sDG + <usize>r * 4, 0);
      store<f32>(sSL + <usize>r * 4, 0);
      continue;
    }
    const g = r / nr, i = i0 + r % nr, h = h0 + g;
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
  const qn1 = stageQ<T>(qbase, q0, i0, h0, nr, R, qRows);
  const qBound = qn1 * (gCapMul != 0 ? gCapMul : <f32>1);
  for (let r = 0; r < BM; r++) {
    store<f32>(sM + <usize>r * 4, -Infinity);
    store<f32>(sL + <usize>r * 4, 0);
  }
  memory.fill(sO, 0, <usize>((R + 3) & ~3) * <usize>Dvp * 4);

  // Key tiles of [ks, ke) that some row sees.
  const kb = <usize>load<u32>(P + P_K), vb = <usize>load<u32>(P + P_V);
  const kStride = <usize>gHk * <usize>D * esize, vStride = <usize>gHk * <usize>gDv * esize;
  const kHead = kb + (<usize>k0 * <usize>gHk + <usize>hk) * <usize>D * esize;
  const vHead = vb + (<usize>k0 * <usize>gHk + <usize>hk) * <usize>gDv * esize;
  const jStart = max(ks, loMin), jEnd = min(ke, hiMax + 1);
  const rv = (R + 3) >> 2;
  const flags = (gCapMul != 0 ? 1 : 0) | (gAlibi != 0 ? 2 : 0);
  // f32 values whose rows need no padding are staged by plain row copies on full tiles.
  const copyV = isFloat<T>() && (gDv & 7) == 0;
  for (let j0 = jStart; j0 < jEnd; j0 += BN) {
    const n = min(BN, jEnd - j0);
    const full = n == BN && loMax <= j0 && hiMin >= j0 + BN - 1;
    const nkg = (n + 3) >> 2;
    const kTile = kHead + <usize>j0 * kStride;
    // Keys each group of 4 rows sees in this tile: boundary tiles skip what a group cannot see
    // (half of a causal diagonal tile).
    const gb = full ? sFB : groupBounds(rv, j0, n);
    if (direct) {
      const kmax = qkDirect<T>(kTile, kStride, n);
      if (qBound * kmax > PRECISE_BOUND) {
        stageK<T>(kTile, kStride, n);
        qkPrecise(4, nkg);
      }
    } else {
      const kmax = stageK<T>(kTile, kStride, n);
      if (qBound * kmax > PRECISE_BOUND) qkPrecise(rv << 2, nkg);
      else qk8((R + 7) >> 3, nkg, gb);
    }
    if (flags == 0) {
      if (full) softmaxPlain(rv, j0, n);
      else softmaxMasked(rv, j0, n);
    } else softmaxGeneral(rv, j0, n, !full, flags);
    if (full && copyV) {
      // rows of V copied whole into the padded tile: P V walks 32-byte slices of them, which
      // at the input's stride (Hk * Dv * 4, often 2-4 KiB) would share a few L1 sets
      const vt = vHead + <usize>j0 * vStride, vb = <usize>gDv * 4;
      for (let c = 0; c < BN; c++) memory.copy(sVS + <usize>c * gVROW, vt + <usize>c * vStride, vb);
      pv(rv, sVS, gVROW, gb);
    } else if (stageV<T>(vHead + <usize>j0 * vStride, vStride, n, !full)) {
      pvSafe(R, j0, n);
    } else {
      pv(rv, sVS, gVROW, gb);
    }
  }

  const parent = load<i32>(it + I_PARENT);
  if (parent < 0) {
    finish<T>(it, sM, sL, sO, 1, 0);
    return;
  }
  // One chunk of a split key range: keep the partial result; the last chunk combines.
  const Dvp4 = <usize>Dvp * 4;
  const slotSize = <usize>slotBytes(gDv);
  const part = <usize>load<u32>(P + P_PARTIAL);
  const slot = part + <usize>load<i32>(it + I_SLOT) * slotSize;
  memory.copy(slot, sM, <usize>SLOT_ROWS * 4);
  memory.copy(slot + SLOT_ROWS * 4, sL, <usize>SLOT_ROWS * 4);
  for (let r = 0; r < R; r++) {
    memory.copy(slot + SLOT_ROWS * 8 + <usize>r * Dvp4, sO + <usize>r * Dvp4, Dvp4);
  }
  const pr = <usize>load<u32>(P + P_PARENTS) + <usize>parent * PARENT_BYTES;
  if (atomic.sub<i32>(pr, 1) == 1) {
    const nChunks = load<i32>(pr + 4), first = load<i32>(pr + 8);
    finish<T>(it, part + <usize>first * slotSize, part + <usize>first * slotSize + SLOT_ROWS * 4,
      part + <usize>first * slotSize + SLOT_ROWS * 8, nChunks, slotSize);
  }
}

/**
 * Writes the item's rows: out = O / l and lse = (m + log2 l) ln 2, combining `chunks` partial
 * results `slotSize` bytes apart in their fixed order. Rows that see no key get 0 and -Infinity.
 */
function finish<T>(it: usize, mp: usize, lp: usize, op: usize, chunks: i32, slotSize: usize): void {
  const P = gParams;
  const q0 = load<i32>(it + I_Q0), h0 = load<i32>(it + I_H0), ng = load<i32>(it + I_NG);
  const i0 = load<i32>(it + I_I0), nr = load<i32>(it + I_NR);
  const R = ng * nr;
  const H = gH, Dv = gDv, Dvp = gDvp;
  const esize = <usize>sizeof<T>();
  const outb = <usize>load<u32>(P + P_OUT), lseb = <usize>load<u32>(P + P_LSE);
  const lseA = load<i32>(P + P_LSEA), lseB = load<i32>(P + P_LSEB);
  const Dv4 = Dv & ~3;
  const acc = sO; // combined accumulator (reuses O's row 0 when combining: rows are done one at a time below)
  for (let r = 0; r < R; r++) {
    const g = r / nr, i = i0 + r % nr, h = h0 + g;
    const orow = outb + (<usize>(q0 + i) * <usize>H + <usize>h) * <usize>Dv * esize;
    const empty = load<i32>(sLO + <usize>r * 4) > load<i32>(sHI + <usize>r * 4);
    let lse: f32 = -Infinity;
    if (empty) {
      for (let d = 0; d < Dv; d++) st<T>(orow + <usize>d * esize, 0);
    } else {
      let m: f32, l: f32, o: usize;
      if (chunks == 1) {
        m = load<f32>(mp + <usize>r * 4);
        l = load<f32>(lp + <usize>r * 4);
        o = op + <usize>r * <usize>Dvp * 4;
      } else {
        // fixed-order combine of the chunks' (m, l, O)
        m = -Infinity;
        for (let c = 0; c < chunks; c++) m = max(m, load<f32>(mp + <usize>c * slotSize + <usize>r * 4));
        const mu = m == -Infinity ? <f32>0 : m;
        l = 0;
        o = acc + <usize>r * <usize>Dvp * 4;
        memory.fill(o, 0, <usize>Dvp * 4);
        for (let c = 0; c < chunks; c++) {
          const mc = load<f32>(mp + <usize>c * slotSize + <usize>r * 4);
          const w = exp2v(f32x4.splat(mc - mu));
          l += f32x4.extract_lane(w, 0) * load<f32>(lp + <usize>c * slotSize + <usize>r * 4);
          const oc = op + <usize>c * slotSize + <usize>r * <usize>Dvp * 4;
          for (let d = 0; d < Dvp; d += 4) {
            v128.store(o + <usize>d * 4, madd(w, v128.load(oc + <usize>d * 4), v128.load(o + <usize>d * 4)));
          }
        }
      }
      const lv = f32x4.splat(l);
      if (isFloat<T>()) {
        let d = 0;
        for (; d < Dv4; d += 4) v128.store(orow + <usize>d * 4, f32x4.div(v128.load(o + <usize>d * 4), lv));
        for (; d < Dv; d++) store<f32>(orow + <usize>d * 4, load<f32>(o + <usize>d * 4) / l);
      } else {
        for (let d = 0; d < Dv; d++) st<T>(orow + <usize>d * esize, load<f32>(o + <usize>d * 4) / l);
      }
      lse = <f32>((<f64>m + log2(<f64>l)) * LN2);
    }
    if (lseb != 0) store<f32>(lseb + (<usize>q0 * <usize>lseA + <usize>h * <usize>lseB + <usize>i) * 4, lse);
  }
}

/**
 * log2 for the lse (x >= 0): exponent plus 2 atanh((f - 1) / (f + 1)) / ln 2 with f in
 * [sqrt(1/2), sqrt(2)). Written out so the module carries no data segment (std's log2 has tables).
 */
function log2(x: f64): f64 {
  if (!(x > 0) || x == Infinity) return x == 0 ? -Infinity : x; // NaN, +Inf, 0
  let u = reinterpret<u64>(x);
  let e = <i32>((u >> 52) & 0x7ff);
  if (e == 0) { // subnormal
    x *= 18014398509481984.0; // 2^54
    u = reinterpret<u64>(x);
    e = <i32>((u >> 52) & 0x7ff) - 54;
  }
  e -= 1023;
  let f = reinterpret<f64>((u & 0x000fffffffffffff) | 0x3ff0000000000000);
  if (f > 1.4142135623730951) { f *= 0.5; e++; }
  const z = (f - 1) / (f + 1), z2 = z * z;
  let s: f64 = 1.0 / 19;
  s = s * z2 + 1.0 / 17; s = s * z2 + 1.0 / 15; s = s * z2 + 1.0 / 13; s = s * z2 + 1.0 / 11;
  s = s * z2 + 1.0 / 9; s = s * z2 + 1.0 / 7; s = s * z2 + 1.0 / 5; s = s * z2 + 1.0 / 3; s = s * z2 + 1;
  return <f64>e + 2 * z * s * 1.4426950408889634;
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

// ---- staging ------------------------------------------------------------------------------

/** Address of virtual row r's q vector, or 0 for a padding row. */
// @ts-ignore: decorator
@inline function qRow(qbase: usize, q0: i32, i0: i32, h0: i32, nr: i32, R: i32, r: i32, es: usize): usize {
  if (r >= R) return 0;
  return qbase + ((<usize>(q0 + i0 + r % nr) * <usize>gH + <usize>(h0 + r / nr)) * <usize>gD) * es;
}

/** A row's 4 elements at d (d + 4 <= D), scaled; zero for a padding row. */
// @ts-ignore: decorator
@inline function ldq<T>(row: usize, d: i32, es: usize, qmul: v128): v128 {
  return row != 0 ? f32x4.mul(ld4<T>(row + <usize>d * es), qmul) : f32x4.splat(0);
}

/**
 * Q rows of the item -> sQT as [d][row] (pre-scaled, converted; padding rows up to qRows and
 * dims up to Dp zero). Returns max over rows of sum |q'| for the precision check.
 */
function stageQ<T>(qbase: usize, q0: i32, i0: i32, h0: i32, nr: i32, R: i32, qRows: i32): f32 {
  const D = gD, Dp = gDp;
  const D4 = D & ~3;
  const es = <usize>sizeof<T>();
  const qm = gQmul;
  const qmul = f32x4.splat(qm);
  let qn1: f32 = 0;
  for (let r = 0; r < qRows; r += 4) {
    const p0 = qRow(qbase, q0, i0, h0, nr, R, r, es), p1 = qRow(qbase, q0, i0, h0, nr, R, r + 1, es);
    const p2 = qRow(qbase, q0, i0, h0, nr, R, r + 2, es), p3 = qRow(qbase, q0, i0, h0, nr, R, r + 3, es);
    let n0 = f32x4.splat(0), n1 = f32x4.splat(0), n2 = f32x4.splat(0), n3 = f32x4.splat(0);
    const dst = sQT + <usize>r * 4;
    let d = 0;
    for (; d < D4; d += 4) {
      const r0 = ldq<T>(p0, d, es, qmul), r1 = ldq<T>(p1, d, es, qmul), r2 = ldq<T>(p2, d, es, qmul), r3 = ldq<T>(p3, d, es, qmul);
      n0 = f32x4.add(n0, f32x4.abs(r0)); n1 = f32x4.add(n1, f32x4.abs(r1));
      n2 = f32x4.add(n2, f32x4.abs(r2)); n3 = f32x4.add(n3, f32x4.abs(r3));
      const t0 = v128.shuffle<f32>(r0, r1, 0, 4, 1, 5), t1 = v128.shuffle<f32>(r2, r3, 0, 4, 1, 5);
      const t2 = v128.shuffle<f32>(r0, r1, 2, 6, 3, 7), t3 = v128.shuffle<f32>(r2, r3, 2, 6, 3, 7);
      if (qRows == 4) { // items of <= 4 rows also keep Q row-major by 4 dims (sQR) for qkDirect
        const qr = sQR + <usize>d * 16;
        v128.store(qr, r0); v128.store(qr, r1, 16); v128.store(qr, r2, 32); v128.store(qr, r3, 48);
      }
      const q = dst + <usize>d * QROW;
      v128.store(q, v128.shuffle<f32>(t0, t1, 0, 1, 4, 5));
      v128.store(q, v128.shuffle<f32>(t0, t1, 2, 3, 6, 7), QROW);
      v128.store(q, v128.shuffle<f32>(t2, t3, 0, 1, 4, 5), 2 * QROW);
      v128.store(q, v128.shuffle<f32>(t2, t3, 2, 3, 6, 7), 3 * QROW);
    }
    for (; d < Dp; d++) { // last dims one by one; zero up to Dp
      const q = dst + <usize>d * QROW;
      if (d < D) {
        const o = <usize>d * es;
        const x0: f32 = p0 != 0 ? ld<T>(p0 + o) * qm : 0, x1: f32 = p1 != 0 ? ld<T>(p1 + o) * qm : 0;
        const x2: f32 = p2 != 0 ? ld<T>(p2 + o) * qm : 0, x3: f32 = p3 != 0 ? ld<T>(p3 + o) * qm : 0;
        n0 = f32x4.replace_lane(n0, 0, f32x4.extract_lane(n0, 0) + abs(x0));
        n1 = f32x4.replace_lane(n1, 0, f32x4.extract_lane(n1, 0) + abs(x1));
        n2 = f32x4.replace_lane(n2, 0, f32x4.extract_lane(n2, 0) + abs(x2));
        n3 = f32x4.replace_lane(n3, 0, f32x4.extract_lane(n3, 0) + abs(x3));
        store<f32>(q, x0); store<f32>(q, x1, 4); store<f32>(q, x2, 8); store<f32>(q, x3, 12);
        if (qRows == 4) {
          const qr = sQR + <usize>((d >> 2) << 6) + <usize>(d & 3) * 4;
          store<f32>(qr, x0); store<f32>(qr, x1, 16); store<f32>(qr, x2, 32); store<f32>(qr, x3, 48);
        }
      } else {
        v128.store(q, f32x4.splat(0));
        if (qRows == 4) {
          const qr = sQR + <usize>((d >> 2) << 6) + <usize>(d & 3) * 4;
          store<f32>(qr, 0); store<f32>(qr, 0, 16); store<f32>(qr, 0, 32); store<f32>(qr, 0, 48);
        }
      }
    }
    // sum |q'| of each row (lanes of hsum4), max over rows
    const sums = hsum4(n0, n1, n2, n3);
    qn1 = max(qn1, max(max(f32x4.extract_lane(sums, 0), f32x4.extract_lane(sums, 1)), max(f32x4.extract_lane(sums, 2), f32x4.extract_lane(sums, 3))));
  }
  return qn1;
}

/**
 * K rows j0..j0+n-1 -> sKI as [key/4][d][4 keys], zero padded (keys >= n, dims >= D).
 * Returns max |k| of the tile (NaN ignored) for the precision check.
 */
function stageK<T>(src: usize, stride: usize, n: i32): f32 {
  let kx = f32x4.splat(0), kn = f32x4.splat(0);
  let kms: f32 = 0;
  const D = gD, Dp = gDp;
  const D4 = D & ~3;
  const es = <usize>sizeof<T>();
  const gbytes = <usize>Dp * 16;
  for (let kg = 0; kg < BN / 4; kg++) {
    const c0 = kg << 2;
    const dst = sKI + <usize>kg * gbytes;
    if (c0 + 4 <= n) {
      const p0 = src + <usize>c0 * stride, p1 = p0 + stride, p2 = p1 + stride, p3 = p2 + stride;
      for (let d = 0; d < D4; d += 4) {
        const o = <usize>d * es;
        const r0 = ld4<T>(p0 + o), r1 = ld4<T>(p1 + o), r2 = ld4<T>(p2 + o), r3 = ld4<T>(p3 + o);
        kx = f32x4.pmax(kx, f32x4.pmax(f32x4.pmax(r0, r1), f32x4.pmax(r2, r3)));
        kn = f32x4.pmin(kn, f32x4.pmin(f32x4.pmin(r0, r1), f32x4.pmin(r2, r3)));
        const t0 = v128.shuffle<f32>(r0, r1, 0, 4, 1, 5);
        const t1 = v128.shuffle<f32>(r2, r3, 0, 4, 1, 5);
        const t2 = v128.shuffle<f32>(r0, r1, 2, 6, 3, 7);
        const t3 = v128.shuffle<f32>(r2, r3, 2, 6, 3, 7);
        const q = dst + <usize>d * 16;
        v128.store(q, v128.shuffle<f32>(t0, t1, 0, 1, 4, 5));
        v128.store(q, v128.shuffle<f32>(t0, t1, 2, 3, 6, 7), 16);
        v128.store(q, v128.shuffle<f32>(t2, t3, 0, 1, 4, 5), 32);
        v128.store(q, v128.shuffle<f32>(t2, t3, 2, 3, 6, 7), 48);
      }
      for (let d = D4; d < Dp; d++) {
        const q = dst + <usize>d * 16;
        if (d < D) {
          const o = <usize>d * es;
          const x0 = ld<T>(p0 + o), x1 = ld<T>(p1 + o), x2 = ld<T>(p2 + o), x3 = ld<T>(p3 + o);
          store<f32>(q, x0);
          store<f32>(q, x1, 4);
          store<f32>(q, x2, 8);
          store<f32>(q, x3, 12);
          kms = max(kms, max(max(abs(x0), abs(x1)), max(abs(x2), abs(x3))));
        } else v128.store(q, i32x4.splat(0));
      }
    } else if (c0 < n) {
      memory.fill(dst, 0, gbytes);
      for (let c = c0; c < n; c++) {
        const p = src + <usize>c * stride;
        const q = dst + <usize>(c - c0) * 4;
        for (let d = 0; d < D; d++) {
          const x = ld<T>(p + <usize>d * es);
          store<f32>(q + <usize>d * 16, x);
          kms = max(kms, abs(x));
        }
      }
    } else {
      memory.fill(dst, 0, gbytes);
    }
  }
  const k = vabsmax(kx, kn);
  return kms > k ? kms : k; // NaN ignored
}

/** V rows j0..j0+n-1 -> sVS as [key][Dvp], zero padded. Returns whether it saw a NaN (when asked). */
function stageV<T>(src: usize, stride: usize, n: i32, checkNaN: bool): bool {
  const Dv = gDv, Dvp = gDvp;
  const Dv4 = Dv & ~3;
  const es = <usize>sizeof<T>();
  const rowBytes = gVROW;
  let nan = i32x4.splat(0);
  for (let c = 0; c < n; c++) {
    const p = src + <usize>c * stride;
    const q = sVS + <usize>c * rowBytes;
    let d = 0;
    for (; d < Dv4; d += 4) {
      const x = ld4<T>(p + <usize>d * es);
      nan = v128.or(nan, f32x4.ne(x, x));
      v128.store(q + <usize>d * 4, x);
    }
    for (; d < Dv; d++) {
      const x = ld<T>(p + <usize>d * es);
      if (x != x) nan = i32x4.splat(-1);
      store<f32>(q + <usize>d * 4, x);
    }
    for (; d < Dvp; d++) store<f32>(q + <usize>d * 4, 0);
  }
  const nj = (n + 3) & ~3;
  if (nj > n) memory.fill(sVS + <usize>n * rowBytes, 0, <usize>(nj - n) * rowBytes);
  return checkNaN && v128.any_true(nan);
}

// ---- S^T = K Q^T --------------------------------------------------------------------------

/** 8 rows x 4 keys register tile; rg8 groups of 8 rows, nkg groups of 4 keys. */
function qk8(rg8: i32, nkg: i32, gb: usize): void {
  const Dp = gDp;
  const gbytes = <usize>Dp * 16;
  for (let kg = 0; kg < nkg; kg++) {
    const kbase = sKI + <usize>kg * gbytes;
    const sbase = sST + <usize>kg * 4 * SROW;
    for (let g = 0; g < rg8; g++) {
      // skip 4 keys no row of the 8 sees (their scores are masked, P is 0)
      const b = gb + <usize>g * 16;
      const lo = min(load<i32>(b), load<i32>(b, 8)), hi = max(load<i32>(b, 4), load<i32>(b, 12));
      if ((kg << 2) > hi || (kg << 2) + 3 < lo) continue;
      let a00 = f32x4.splat(0), a01 = f32x4.splat(0), a10 = f32x4.splat(0), a11 = f32x4.splat(0);
      let a20 = f32x4.splat(0), a21 = f32x4.splat(0), a30 = f32x4.splat(0), a31 = f32x4.splat(0);
      let qp = sQT + <usize>g * 32, kp = kbase;
      const kend = kbase + gbytes;
      // One d per iteration: unrolling lets binaryen chain each accumulator's updates, which
      // keeps more q vectors live than x64's 16 vector registers hold (V8 then spills). The loop
      // runs on the K pointer (no separate counter).
      for (; kp < kend;) {
        const q0 = v128.load(qp), q1 = v128.load(qp, 16);
        let k = v128.load32_splat(kp); a00 = madd(q0, k, a00); a01 = madd(q1, k, a01);
        k = v128.load32_splat(kp, 4); a10 = madd(q0, k, a10); a11 = madd(q1, k, a11);
        k = v128.load32_splat(kp, 8); a20 = madd(q0, k, a20); a21 = madd(q1, k, a21);
        k = v128.load32_splat(kp, 12); a30 = madd(q0, k, a30); a31 = madd(q1, k, a31);
        qp += QROW; kp += 16;
      }
      const sp = sbase + <usize>g * 32;
      v128.store(sp, a00); v128.store(sp, a01, 16);
      v128.store(sp, a10, SROW); v128.store(sp, a11, SROW + 16);
      v128.store(sp, a20, 2 * SROW); v128.store(sp, a21, 2 * SROW + 16);
      v128.store(sp, a30, 3 * SROW); v128.store(sp, a31, 3 * SROW + 16);
    }
  }
}

/**
 * S^T for items of at most 4 rows (decode), straight from the K rows in memory (halves converted
 * as loaded): 4 rows x 2 keys of partial dot products over d, reduced across lanes at the end.
 * Keys are read once and never staged. Returns max |k| (NaN ignored) for the precision check.
 */
function qkDirect<T>(src: usize, stride: usize, n: i32): f32 {
  const D = gD;
  const D4 = D & ~3;
  const es = <usize>sizeof<T>();
  // max |k| as max(kx, -kn): pmax / pmin are one instruction each (abs is three on x64)
  let kx = f32x4.splat(0), kn = f32x4.splat(0);
  for (let c = 0; c < n; c += 2) {
    const p0 = src + <usize>c * stride;
    const p1 = c + 1 < n ? p0 + stride : p0; // an odd tail repeats the last key (masked anyway)
    let a00 = f32x4.splat(0), a01 = f32x4.splat(0), a10 = f32x4.splat(0), a11 = f32x4.splat(0);
    let a20 = f32x4.splat(0), a21 = f32x4.splat(0), a30 = f32x4.splat(0), a31 = f32x4.splat(0);
    let qp = sQR;
    let d = 0;
    for (; d < D4; d += 4) {
      const k0 = ld4<T>(p0 + <usize>d * es), k1 = ld4<T>(p1 + <usize>d * es);
      kx = f32x4.pmax(kx, f32x4.pmax(k0, k1));
      kn = f32x4.pmin(kn, f32x4.pmin(k0, k1));
      let x = v128.load(qp); a00 = madd(x, k0, a00); a01 = madd(x, k1, a01);
      x = v128.load(qp, 16); a10 = madd(x, k0, a10); a11 = madd(x, k1, a11);
      x = v128.load(qp, 32); a20 = madd(x, k0, a20); a21 = madd(x, k1, a21);
      x = v128.load(qp, 48); a30 = madd(x, k0, a30); a31 = madd(x, k1, a31);
      qp += 64;
    }
    if (d < D) { // last 1..3 dims: never read past the row
      let k0 = f32x4.splat(0), k1 = f32x4.splat(0);
      k0 = f32x4.replace_lane(k0, 0, ld<T>(p0 + <usize>d * es));
      k1 = f32x4.replace_lane(k1, 0, ld<T>(p1 + <usize>d * es));
      if (d + 1 < D) {
        k0 = f32x4.replace_lane(k0, 1, ld<T>(p0 + <usize>(d + 1) * es));
        k1 = f32x4.replace_lane(k1, 1, ld<T>(p1 + <usize>(d + 1) * es));
      }
      if (d + 2 < D) {
        k0 = f32x4.replace_lane(k0, 2, ld<T>(p0 + <usize>(d + 2) * es));
        k1 = f32x4.replace_lane(k1, 2, ld<T>(p1 + <usize>(d + 2) * es));
      }
      kx = f32x4.pmax(kx, f32x4.pmax(k0, k1));
      kn = f32x4.pmin(kn, f32x4.pmin(k0, k1));
      let x = v128.load(qp); a00 = madd(x, k0, a00); a01 = madd(x, k1, a01);
      x = v128.load(qp, 16); a10 = madd(x, k0, a10); a11 = madd(x, k1, a11);
      x = v128.load(qp, 32); a20 = madd(x, k0, a20); a21 = madd(x, k1, a21);
      x = v128.load(qp, 48); a30 = madd(x, k0, a30); a31 = madd(x, k1, a31);
    }
    const sp = sST + <usize>c * SROW;
    v128.store(sp, hsum4(a00, a10, a20, a30));
    v128.store(sp, hsum4(a01, a11, a21, a31), SROW);
  }
  return vabsmax(kx, kn);
}

/** max over lanes of max(x, -n), for x >= 0 >= n (running max and min). */
// @ts-ignore: decorator
@inline function vabsmax(x: v128, n: v128): f32 {
  let m = f32x4.pmax(x, f32x4.neg(n));
  m = f32x4.pmax(m, v128.shuffle<f32>(m, m, 2, 3, 0, 1));
  m = f32x4.pmax(m, v128.shuffle<f32>(m, m, 1, 0, 3, 2));
  return f32x4.extract_lane(m, 0);
}

/** [sum(a), sum(b), sum(c), sum(d)] of four vectors. */
// @ts-ignore: decorator
@inline function hsum4(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = f32x4.add(v128.shuffle<f32>(a, b, 0, 4, 1, 5), v128.shuffle<f32>(a, b, 2, 6, 3, 7)); // a0+a2 b0+b2 a1+a3 b1+b3
  const cd = f32x4.add(v128.shuffle<f32>(c, d, 0, 4, 1, 5), v128.shuffle<f32>(c, d, 2, 6, 3, 7));
  return f32x4.add(v128.shuffle<f32>(ab, cd, 0, 1, 4, 5), v128.shuffle<f32>(ab, cd, 2, 3, 6, 7));
}

/** S^T accumulated in float64 (rows multiple of 4), for tiles whose scores are too large for float32 sums. */
function qkPrecise(rows: i32, nkg: i32): void {
  const Dp = gDp;
  const gbytes = <usize>Dp * 16;
  for (let kg = 0; kg < nkg; kg++) {
    const kbase = sKI + <usize>kg * gbytes;
    const sp = sST + <usize>kg * 4 * SROW;
    for (let r = 0; r < rows; r++) {
      let a0 = f64x2.splat(0), a1 = f64x2.splat(0);
      let qp = sQT + <usize>r * 4, kp = kbase;
      for (let d = 0; d < Dp; d++) {
        const k4 = v128.load(kp);
        const q = f64x2.splat(<f64>load<f32>(qp));
        a0 = f64x2.add(a0, f64x2.mul(q, f64x2.promote_low_f32x4(k4)));
        a1 = f64x2.add(a1, f64x2.mul(q, f64x2.promote_low_f32x4(v128.shuffle<f32>(k4, k4, 2, 3, 0, 1))));
        qp += QROW; kp += 16;
      }
      const s = v128.shuffle<f32>(f32x4.demote_f64x2_zero(a0), f32x4.demote_f64x2_zero(a1), 0, 1, 4, 5);
      const o = sp + <usize>r * 4;
      store<f32>(o, f32x4.extract_lane(s, 0));
      store<f32>(o, f32x4.extract_lane(s, 1), SROW);
      store<f32>(o, f32x4.extract_lane(s, 2), 2 * SROW);
      store<f32>(o, f32x4.extract_lane(s, 3), 3 * SROW);
    }
  }
}

// ---- online softmax, four rows per vector ----------------------------------------------------

/**
 * For each vector of four rows: transform the tile's scores (softcap, ALiBi, mask), take the
 * running max, turn S^T into P^T = 2^(s - m) in place, update l and leave alpha = 2^(m_old - m).
 * `masked`, `cap` and `alibi` are constants at every call site, so each variant is its own loop.
 */
// @ts-ignore: decorator
@inline function softmaxRows(rv: i32, j0: i32, n: i32, masked: bool, cap: bool, alibi: bool): void {
  const nj = (n + 3) & ~3;
  const negInf = f32x4.splat(-Infinity);
  const capMul = f32x4.splat(gCapMul);
  for (let v = 0; v < rv; v++) {
    const ro = <usize>v * 16;
    const mold = v128.load(sM + ro);
    const lo = v128.load(sLO + ro);
    const hi = i32x4.min_s(v128.load(sHI + ro), i32x4.splat(j0 + n - 1));
    const slope = v128.load(sSL + ro), diag = v128.load(sDG + ro);
    let mx0 = negInf, mx1 = negInf;
    let sp = sST + ro;
    for (let j = 0; j < nj; j += 2) {
      let s0 = v128.load(sp), s1 = v128.load(sp, SROW);
      if (cap) {
        s0 = f32x4.mul(capMul, tanhv(s0));
        s1 = f32x4.mul(capMul, tanhv(s1));
      }
      if (alibi) {
        const jf = f32x4.splat(<f32>(j0 + j));
        s0 = f32x4.sub(s0, f32x4.mul(slope, f32x4.abs(f32x4.sub(diag, jf))));
        s1 = f32x4.sub(s1, f32x4.mul(slope, f32x4.abs(f32x4.sub(diag, f32x4.add(jf, f32x4.splat(1))))));
      }
      if (masked) {
        const jj = i32x4.splat(j0 + j), jk = i32x4.splat(j0 + j + 1);
        s0 = v128.bitselect(s0, negInf, v128.and(i32x4.ge_s(jj, lo), i32x4.le_s(jj, hi)));
        s1 = v128.bitselect(s1, negInf, v128.and(i32x4.ge_s(jk, lo), i32x4.le_s(jk, hi)));
      }
      if (cap || alibi || masked) {
        v128.store(sp, s0);
        v128.store(sp, s1, SROW);
      }
      mx0 = f32x4.pmax(mx0, s0);
      mx1 = f32x4.pmax(mx1, s1);
      sp += 2 * SROW;
    }
    const mnew = f32x4.pmax(mold, f32x4.pmax(mx0, mx1));
    const mu = v128.andnot(mnew, f32x4.eq(mnew, negInf)); // -inf -> 0 so that -inf - mu = -inf
    const alpha = exp2v(f32x4.sub(mold, mu));
    let l0 = f32x4.splat(0), l1 = f32x4.splat(0);
    sp = sST + ro;
    for (let j = 0; j < nj; j += 2) {
      const p0 = exp2v(f32x4.sub(v128.load(sp), mu));
      const p1 = exp2v(f32x4.sub(v128.load(sp, SROW), mu));
      v128.store(sp, p0);
      v128.store(sp, p1, SROW);
      l0 = f32x4.add(l0, p0);
      l1 = f32x4.add(l1, p1);
      sp += 2 * SROW;
    }
    v128.store(sL + ro, madd(v128.load(sL + ro), alpha, f32x4.add(l0, l1)));
    v128.store(sM + ro, mnew);
    v128.store(sA + ro, alpha);
  }
}

function softmaxPlain(rv: i32, j0: i32, n: i32): void {
  softmaxRows(rv, j0, n, false, false, false);
}

function softmaxMasked(rv: i32, j0: i32, n: i32): void {
  softmaxRows(rv, j0, n, true, false, false);
}

function softmaxGeneral(rv: i32, j0: i32, n: i32, masked: bool, flags: i32): void {
  const cap = (flags & 1) != 0, alibi = (flags & 2) != 0;
  if (masked) {
    if (cap && alibi) softmaxRows(rv, j0, n, true, true, true);
    else if (cap) softmaxRows(rv, j0, n, true, true, false);
    else softmaxRows(rv, j0, n, true, false, true);
  } else {
    if (cap && alibi) softmaxRows(rv, j0, n, false, true, true);
    else if (cap) softmaxRows(rv, j0, n, false, true, false);
    else softmaxRows(rv, j0, n, false, false, true);
  }
}

// ---- O = alpha O + P V ------------------------------------------------------------------------

/**
 * 4 rows x 8 dims register tile; rg4 groups of 4 rows, each over the keys `gb` says it sees.
 * V rows are read from `vsrc`, `vstride` bytes apart: the staged tile, or the input itself.
 */
function pv(rg4: i32, vsrc: usize, vstride: usize, gb: usize): void {
  const Dvp = gDvp;
  const ostride = <usize>Dvp * 4;
  for (let g = 0; g < rg4; g++) {
    const orow = sO + <usize>g * 4 * ostride;
    const ap = sA + <usize>g * 16;
    const jlo = load<i32>(gb + <usize>g * 8), jhi = load<i32>(gb + <usize>g * 8, 4);
    for (let dg = 0; dg < Dvp; dg += 8) {
      const op = orow + <usize>dg * 4;
      let al = v128.load32_splat(ap);
      let a00 = f32x4.mul(v128.load(op), al), a01 = f32x4.mul(v128.load(op, 16), al);
      al = v128.load32_splat(ap, 4);
      let a10 = f32x4.mul(v128.load(op + ostride), al), a11 = f32x4.mul(v128.load(op + ostride, 16), al);
      al = v128.load32_splat(ap, 8);
      let a20 = f32x4.mul(v128.load(op + 2 * ostride), al), a21 = f32x4.mul(v128.load(op + 2 * ostride, 16), al);
      al = v128.load32_splat(ap, 12);
      let a30 = f32x4.mul(v128.load(op + 3 * ostride), al), a31 = f32x4.mul(v128.load(op + 3 * ostride, 16), al);
      let pp = sST + <usize>g * 16 + <usize>jlo * SROW, vp = vsrc + <usize>dg * 4 + <usize>jlo * vstride;
      const pend = sST + <usize>g * 16 + <usize>(jhi + 1) * SROW;
      for (; pp < pend;) { // runs on the P pointer (no separate counter)
        const v0 = v128.load(vp), v1 = v128.load(vp, 16);
        let p = v128.load32_splat(pp); a00 = madd(p, v0, a00); a01 = madd(p, v1, a01);
        p = v128.load32_splat(pp, 4); a10 = madd(p, v0, a10); a11 = madd(p, v1, a11);
        p = v128.load32_splat(pp, 8); a20 = madd(p, v0, a20); a21 = madd(p, v1, a21);
        p = v128.load32_splat(pp, 12); a30 = madd(p, v0, a30); a31 = madd(p, v1, a31);
        vp += vstride; pp += SROW;
      }
      v128.store(op, a00); v128.store(op, a01, 16);
      v128.store(op + ostride, a10); v128.store(op + ostride, a11, 16);
      v128.store(op + 2 * ostride, a20); v128.store(op + 2 * ostride, a21, 16);
      v128.store(op + 3 * ostride, a30); v128.store(op + 3 * ostride, a31, 16);
    }
  }
}

/**
 * P V for a boundary tile whose V holds a NaN: each row adds only the keys it sees, so a NaN in
 * a value row that the mask hides from a row cannot reach it through 0 * NaN.
 */
function pvSafe(R: i32, j0: i32, n: i32): void {
  const Dvp = gDvp;
  const ostride = <usize>Dvp * 4;
  for (let r = 0; r < R; r++) {
    const o = sO + <usize>r * ostride;
    const al = v128.load32_splat(sA + <usize>r * 4);
    for (let d = 0; d < Dvp; d += 4) v128.store(o + <usize>d * 4, f32x4.mul(v128.load(o + <usize>d * 4), al));
    const lo = max(load<i32>(sLO + <usize>r * 4) - j0, 0);
    const hi = min(load<i32>(sHI + <usize>r * 4) - j0, n - 1);
    for (let j = lo; j <= hi; j++) {
      const p = v128.load32_splat(sST + <usize>j * SROW + <usize>r * 4);
      const vr = sVS + <usize>j * gVROW;
      for (let d = 0; d < Dvp; d += 4) {
        v128.store(o + <usize>d * 4, madd(p, v128.load(vr + <usize>d * 4), v128.load(o + <usize>d * 4)));
      }
    }
  }
}
