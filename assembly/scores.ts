// S^T = K Q^T for one key tile, into sST as [key][row] so that the softmax finds four rows in a
// vector. Three paths: an 8-row register tile over staged K (the common one), direct dot products
// for decode items (at most 4 rows per kv head, K unstaged), and float64 sums for tiles whose
// scores are too large for float32 ones.

import { isPaged, rowAt } from './rows';
import { h2f, h2fRaw, hsum4, isHalf, ld4, ldraw, madd, vabsmax } from './simd';
import { QROW, SROW, gD, gDp, gDv, sKI, sMask, sQR, sQT, sSink, sST } from './state';

/** 8 rows x 4 keys register tile; rg8 groups of 8 rows, nkg groups of 4 keys. */
export function qk8(rg8: i32, nkg: i32, gb: usize): void {
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
 * S^T for decode items (one group of at most 4 rows per kv head, nk kv heads), straight from the K rows in
 * memory (float16 loaded raw, h2fRaw, against sQR scaled by its inverse): per key pair, each kv head's 4 rows
 * x 2 keys of partial dot products over d, reduced across lanes at the end, into S^T's columns 4k .. 4k+3. A
 * key's rows of the nk heads are adjacent, so each key is read in one run; keys are read once and never
 * staged. Key c's row of the item's first kv head is at rowAt<M>(src, stride, c), head k D elements further.
 * Returns max |k| for the precision check: NaN ignored, except for float16, where an Inf or a NaN gives
 * Infinity (the raw loads made it finite; the tile is then redone exactly). Float16 also touches the tile's
 * V rows (row c at rowAt<M>(vsrc, vstride, c)), one load per 64 bytes, so that their cache misses overlap
 * this arithmetic instead of stalling stageVRaw.
 */
export function qkDirect<T, M>(src: usize, stride: usize, n: i32, nk: i32, vsrc: usize, vstride: usize): f32 {
  const D = gD;
  const D4 = D & ~3;
  const es = <usize>sizeof<T>();
  const hb = <usize>D * es, qb = <usize>gDp * 16, vLen = <usize>nk * <usize>gDv * es;
  const mask = v128.load(sMask);
  // max |k|: float32 / bfloat16 as max(kx, -kn) (pmax / pmin are one instruction each, abs is three on x64);
  // float16 as the unsigned max of the magnitude bits shifted to the top (one accumulator: hx)
  let kx = f32x4.splat(0), kn = f32x4.splat(0), hx = i32x4.splat(0), tail: u32 = 0;
  let touch = i32x4.splat(0);
  for (let c = 0; c < n; c += 2) {
    const r0 = rowAt<M>(src, stride, c);
    // an odd tail repeats the last key (masked anyway)
    const r1 = c + 1 < n ? (isPaged<M>() ? rowAt<M>(src, stride, c + 1) : r0 + stride) : r0;
    if (isHalf<T>()) {
      const v0 = rowAt<M>(vsrc, vstride, c), v1 = c + 1 < n ? rowAt<M>(vsrc, vstride, c + 1) : v0;
      for (let o: usize = 0; o < vLen; o += 64) touch = v128.or(touch, v128.or(v128.load(v0 + o), v128.load(v1 + o)));
    }
    for (let k = 0; k < nk; k++) {
      const p0 = r0 + <usize>k * hb, p1 = r1 + <usize>k * hb;
      let a00 = f32x4.splat(0), a01 = f32x4.splat(0), a10 = f32x4.splat(0), a11 = f32x4.splat(0);
      let a20 = f32x4.splat(0), a21 = f32x4.splat(0), a30 = f32x4.splat(0), a31 = f32x4.splat(0);
      let qp = sQR + <usize>k * qb;
      let d = 0;
      for (; d < D4; d += 4) {
        let k0: v128, k1: v128;
        if (isHalf<T>()) {
          const h0 = v128.load16x4_s(p0 + <usize>d * 2), h1 = v128.load16x4_s(p1 + <usize>d * 2);
          hx = i32x4.max_u(hx, i32x4.max_u(i32x4.shl(h0, 17), i32x4.shl(h1, 17)));
          k0 = h2fRaw(h0, mask);
          k1 = h2fRaw(h1, mask);
        } else {
          k0 = ld4<T>(p0 + <usize>d * es);
          k1 = ld4<T>(p1 + <usize>d * es);
          kx = f32x4.pmax(kx, f32x4.pmax(k0, k1));
          kn = f32x4.pmin(kn, f32x4.pmin(k0, k1));
        }
        let x = v128.load(qp); a00 = madd(x, k0, a00); a01 = madd(x, k1, a01);
        x = v128.load(qp, 16); a10 = madd(x, k0, a10); a11 = madd(x, k1, a11);
        x = v128.load(qp, 32); a20 = madd(x, k0, a20); a21 = madd(x, k1, a21);
        x = v128.load(qp, 48); a30 = madd(x, k0, a30); a31 = madd(x, k1, a31);
        qp += 64;
      }
      if (d < D) { // last 1..3 dims: never read past the row
        let k0 = f32x4.splat(0), k1 = f32x4.splat(0);
        for (let t = 0; t < D - d; t++) {
          const o = <usize>(d + t) * es;
          if (isHalf<T>()) tail = max(tail, max(<u32>load<u16>(p0 + o), <u32>load<u16>(p1 + o)) & 0x7fff);
          const x0 = ldraw<T>(p0 + o), x1 = ldraw<T>(p1 + o);
          if (t == 0) { k0 = f32x4.replace_lane(k0, 0, x0); k1 = f32x4.replace_lane(k1, 0, x1); }
          else if (t == 1) { k0 = f32x4.replace_lane(k0, 1, x0); k1 = f32x4.replace_lane(k1, 1, x1); }
          else { k0 = f32x4.replace_lane(k0, 2, x0); k1 = f32x4.replace_lane(k1, 2, x1); }
        }
        if (!isHalf<T>()) {
          kx = f32x4.pmax(kx, f32x4.pmax(k0, k1));
          kn = f32x4.pmin(kn, f32x4.pmin(k0, k1));
        }
        let x = v128.load(qp); a00 = madd(x, k0, a00); a01 = madd(x, k1, a01);
        x = v128.load(qp, 16); a10 = madd(x, k0, a10); a11 = madd(x, k1, a11);
        x = v128.load(qp, 32); a20 = madd(x, k0, a20); a21 = madd(x, k1, a21);
        x = v128.load(qp, 48); a30 = madd(x, k0, a30); a31 = madd(x, k1, a31);
      }
      const sp = sST + <usize>c * SROW + <usize>k * 16;
      v128.store(sp, hsum4(a00, a10, a20, a30));
      v128.store(sp, hsum4(a01, a11, a21, a31), SROW);
    }
  }
  if (!isHalf<T>()) return vabsmax(kx, kn);
  v128.store(sSink, touch);
  hx = i32x4.max_u(hx, v128.shuffle<u32>(hx, hx, 2, 3, 0, 1));
  hx = i32x4.max_u(hx, v128.shuffle<u32>(hx, hx, 1, 0, 3, 2));
  const m = max(tail, <u32>i32x4.extract_lane(hx, 0) >>> 17); // max |h| as bits
  return m >= 0x7c00 ? <f32>Infinity : h2f(m);
}

/**
 * S^T of rows r0 .. r0+rows-1 (a multiple of 4) accumulated in float64 over the staged K, for tiles whose
 * scores are too large for float32 sums.
 */
export function qkPrecise(r0: i32, rows: i32, nkg: i32): void {
  const Dp = gDp;
  const gbytes = <usize>Dp * 16;
  for (let kg = 0; kg < nkg; kg++) {
    const kbase = sKI + <usize>kg * gbytes;
    const sp = sST + <usize>kg * 4 * SROW;
    for (let r = r0; r < r0 + rows; r++) {
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
