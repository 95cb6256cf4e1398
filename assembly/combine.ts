// The end of an item: rows normalised and written out. The splits of a split item each leave a
// partial (m, l, O); the last to finish merges them here in split order, never in finishing
// order, so the result does not depend on which thread ran which split.

import {
  I_H0, I_I0, I_NG, I_NK, I_NR, I_Q0, I_SLOT, PA_SPLITS, PA_FIRST, PA_LEFT, PARENT_INTS, P_LSE, P_LSEA, P_LSEB,
  P_OUT, P_PARENTS, P_PARTIAL, P_SINKS, SLOT_ROWS,
} from './abi';
import { exp2v, madd, st } from './simd';
import { LN2, gDv, gDvp, gH, gParams, headOf, rowOf, rowsPerKv, sHI, sL, sLO, sM, sO, slotBytes } from './state';

const PARENT_BYTES: usize = PARENT_INTS * 4;

/**
 * One split of a key range is done: its partial (m, l, O) goes to its slot, and the split
 * that brings the parent's count to zero (whichever thread ran it) combines all the slots.
 */
// @ts-ignore: decorator
@inline export function splitDone<T>(it: usize, parent: i32, R: i32): void {
  const P = gParams;
  const Dvp4 = <usize>gDvp * 4;
  const slotSize = <usize>slotBytes(gDv);
  const part = <usize>load<u32>(P + P_PARTIAL * 4);
  const slot = part + <usize>load<i32>(it + I_SLOT * 4) * slotSize;
  memory.copy(slot, sM, <usize>SLOT_ROWS * 4);
  memory.copy(slot + SLOT_ROWS * 4, sL, <usize>SLOT_ROWS * 4);
  for (let r = 0; r < R; r++) {
    memory.copy(slot + SLOT_ROWS * 8 + <usize>r * Dvp4, sO + <usize>r * Dvp4, Dvp4);
  }
  const pr = <usize>load<u32>(P + P_PARENTS * 4) + <usize>parent * PARENT_BYTES;
  if (atomic.sub<i32>(pr + PA_LEFT * 4, 1) == 1) {
    const nSplits = load<i32>(pr + PA_SPLITS * 4), first = load<i32>(pr + PA_FIRST * 4);
    finish<T>(it, part + <usize>first * slotSize, part + <usize>first * slotSize + SLOT_ROWS * 4,
      part + <usize>first * slotSize + SLOT_ROWS * 8, nSplits, slotSize);
  }
}

/**
 * Writes the item's rows (padding rows of a decode item skipped): out = O / l and lse = (m + log2 l) ln 2, combining `splits` partial
 * results `slotSize` bytes apart in their fixed order. Rows that see no key get 0 and -Infinity.
 * With sinks (log2-domain logits s_h), l gains 2^(s_h - m): out = O / (l + 2^(s_h - m)) and
 * lse = (M + log2(l 2^(m - M) + 2^(s_h - M))) ln 2 with M = max(m, s_h); an empty row's lse is s_h ln 2.
 */
export function finish<T>(it: usize, mp: usize, lp: usize, op: usize, splits: i32, slotSize: usize): void {
  const P = gParams;
  const q0 = load<i32>(it + I_Q0 * 4), h0 = load<i32>(it + I_H0 * 4), ng = load<i32>(it + I_NG * 4);
  const i0 = load<i32>(it + I_I0 * 4), nr = load<i32>(it + I_NR * 4), nk = load<i32>(it + I_NK * 4);
  const RH = rowsPerKv(ng, nr, nk), R = nk * RH;
  const H = gH, Dv = gDv, Dvp = gDvp;
  const esize = <usize>sizeof<T>();
  const outb = <usize>load<u32>(P + P_OUT * 4), lseb = <usize>load<u32>(P + P_LSE * 4);
  const lseA = load<i32>(P + P_LSEA * 4), lseB = load<i32>(P + P_LSEB * 4);
  const Dv4 = Dv & ~3;
  const sinkp = <usize>load<u32>(P + P_SINKS * 4);
  const acc = sO; // combined accumulator (reuses O's row 0 when combining: rows are done one at a time below)
  for (let r = 0; r < R; r++) {
    const h = headOf(r, h0, ng, nr, RH), i = rowOf(r, i0, nr, RH);
    if (h < 0) continue; // padding
    const orow = outb + (<usize>(q0 + i) * <usize>H + <usize>h) * <usize>Dv * esize;
    const empty = load<i32>(sLO + <usize>r * 4) > load<i32>(sHI + <usize>r * 4);
    const sink: f32 = sinkp != 0 ? load<f32>(sinkp + <usize>h * 4) : -Infinity;
    let lse: f32 = sinkp != 0 ? <f32>(<f64>sink * LN2) : -Infinity;
    if (empty) {
      for (let d = 0; d < Dv; d++) st<T>(orow + <usize>d * esize, 0);
    } else {
      let m: f32, l: f32, o: usize;
      if (splits == 1) {
        m = load<f32>(mp + <usize>r * 4);
        l = load<f32>(lp + <usize>r * 4);
        o = op + <usize>r * <usize>Dvp * 4;
      } else {
        // fixed-order combine of the splits' (m, l, O)
        m = -Infinity;
        for (let c = 0; c < splits; c++) m = max(m, load<f32>(mp + <usize>c * slotSize + <usize>r * 4));
        const mu = m == -Infinity ? <f32>0 : m;
        l = 0;
        o = acc + <usize>r * <usize>Dvp * 4;
        memory.fill(o, 0, <usize>Dvp * 4);
        for (let c = 0; c < splits; c++) {
          const mc = load<f32>(mp + <usize>c * slotSize + <usize>r * 4);
          const w = exp2v(f32x4.splat(mc - mu));
          l += f32x4.extract_lane(w, 0) * load<f32>(lp + <usize>c * slotSize + <usize>r * 4);
          const oc = op + <usize>c * slotSize + <usize>r * <usize>Dvp * 4;
          for (let d = 0; d < Dvp; d += 4) {
            v128.store(o + <usize>d * 4, madd(w, v128.load(oc + <usize>d * 4), v128.load(o + <usize>d * 4)));
          }
        }
      }
      let lse2 = <f64>m + log2(<f64>l);
      if (sinkp != 0 && m == m) {
        // Both exponents are <= 0, so exp2v cannot overflow; a = 0 (the sink dwarfs every score) gives out 0.
        const big = max(m, sink);
        const w = exp2v(f32x4.replace_lane(f32x4.splat(m - big), 1, sink - big));
        const a = f32x4.extract_lane(w, 0), b = f32x4.extract_lane(w, 1);
        lse2 = <f64>big + log2(<f64>l * <f64>a + <f64>b);
        l = a > 0 ? l + b / a : <f32>Infinity;
      }
      const lv = f32x4.splat(l);
      if (isFloat<T>()) {
        let d = 0;
        for (; d < Dv4; d += 4) v128.store(orow + <usize>d * 4, f32x4.div(v128.load(o + <usize>d * 4), lv));
        for (; d < Dv; d++) store<f32>(orow + <usize>d * 4, load<f32>(o + <usize>d * 4) / l);
      } else {
        for (let d = 0; d < Dv; d++) st<T>(orow + <usize>d * esize, load<f32>(o + <usize>d * 4) / l);
      }
      lse = <f32>(lse2 * LN2);
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
