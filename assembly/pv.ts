// O = corr O + P V for one key tile, P^T taken from sST.

import { ld4raw, madd } from './simd';
import { SROW, gDvp, sCorr, sHI, sLO, sMask, sO, sST, sVS } from './state';

/**
 * 4 rows x 8 dims register tile; groups g0 .. g1-1 of 4 rows, each over the keys `gb` says it sees.
 * V rows are read from `vsrc`, `vstride` bytes apart (the staged tile: one kv head's part of it), as T:
 * float32, or raw float16 (stageVRaw; P then scaled by 2^112, scaleP).
 */
export function pv<T>(g0: i32, g1: i32, vsrc: usize, vstride: usize, gb: usize): void {
  const Dvp = gDvp;
  const mask = v128.load(sMask);
  const es = <usize>sizeof<T>();
  const ostride = <usize>Dvp * 4;
  for (let g = g0; g < g1; g++) {
    const orow = sO + <usize>g * 4 * ostride;
    const ap = sCorr + <usize>g * 16;
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
      let pp = sST + <usize>g * 16 + <usize>jlo * SROW, vp = vsrc + <usize>dg * es + <usize>jlo * vstride;
      const pend = sST + <usize>g * 16 + <usize>(jhi + 1) * SROW;
      for (; pp < pend;) { // runs on the P pointer (no separate counter)
        const v0 = ld4raw<T>(vp, mask), v1 = ld4raw<T>(vp + 4 * es, mask);
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
 * P^T of the tile's keys (rv vectors of 4 rows) times s: 2^112 before pv<u16>, whose raw halves are the
 * values times 2^-112, so that each product is bit for bit p * v. p = 0 (masked) stays 0.
 */
export function scaleP(rv: i32, n: i32, s: f32): void {
  const sv = f32x4.splat(s);
  for (let j = 0; j < n; j++) {
    const row = sST + <usize>j * SROW;
    for (let v = 0; v < rv; v++) v128.store(row + <usize>v * 16, f32x4.mul(v128.load(row + <usize>v * 16), sv));
  }
}

/**
 * P V for a boundary tile whose V holds a NaN: each row adds only the keys it sees, so a NaN in
 * a value row that the mask hides from a row cannot reach it through 0 * NaN. Row r reads kv head r / RH's
 * part of the staged rows (vrow bytes each).
 */
export function pvSafe(R: i32, RH: i32, j0: i32, n: i32, vrow: usize): void {
  const Dvp = gDvp;
  const ostride = <usize>Dvp * 4;
  for (let r = 0; r < R; r++) {
    const o = sO + <usize>r * ostride;
    const al = v128.load32_splat(sCorr + <usize>r * 4);
    for (let d = 0; d < Dvp; d += 4) v128.store(o + <usize>d * 4, f32x4.mul(v128.load(o + <usize>d * 4), al));
    const lo = max(load<i32>(sLO + <usize>r * 4) - j0, 0);
    const hi = min(load<i32>(sHI + <usize>r * 4) - j0, n - 1);
    for (let j = lo; j <= hi; j++) {
      const p = v128.load32_splat(sST + <usize>j * SROW + <usize>r * 4);
      const vr = sVS + <usize>j * vrow + <usize>(r / RH) * <usize>Dvp * 4;
      for (let d = 0; d < Dvp; d += 4) {
        v128.store(o + <usize>d * 4, madd(p, v128.load(vr + <usize>d * 4), v128.load(o + <usize>d * 4)));
      }
    }
  }
}
