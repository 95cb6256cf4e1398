// The online softmax, in the log2 domain (scores come pre-scaled by log2(e)), four rows per
// vector: sST holds S^T, so a vector load is one key's score for four rows and no horizontal
// reduction is needed.

import { exp2v, madd, tanhv } from './simd';
import { SROW, gCapMul, sCorr, sDG, sHI, sL, sLO, sM, sSL, sST } from './state';

/**
 * For each vector of four rows: transform the tile's scores (softcap, ALiBi, mask), take the
 * running max, turn S^T into P^T = 2^(s - m) in place, update l and leave corr = 2^(m_old - m).
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
    const corr = exp2v(f32x4.sub(mold, mu));
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
    v128.store(sL + ro, madd(v128.load(sL + ro), corr, f32x4.add(l0, l1)));
    v128.store(sM + ro, mnew);
    v128.store(sCorr + ro, corr);
  }
}

export function softmaxPlain(rv: i32, j0: i32, n: i32): void {
  softmaxRows(rv, j0, n, false, false, false);
}

export function softmaxMasked(rv: i32, j0: i32, n: i32): void {
  softmaxRows(rv, j0, n, true, false, false);
}

export function softmaxGeneral(rv: i32, j0: i32, n: i32, masked: bool, flags: i32): void {
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
