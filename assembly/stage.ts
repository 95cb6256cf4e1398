// Staging: a tile's inputs copied into scratch in the layout the score and P V loops stream
// through, converted to float32 as they are loaded (halves never reach the inner loops). The
// tiles are zero padded, so the loops need no tail cases and never read past a row.

import { isPaged, rowAt } from './rows';
import { hsum4, isHalf, ld, ld4, rawScale, storeT4, vabsmax } from './simd';
import { BN, QROW, gD, gDp, gDv, gDvp, gH, gQmul, headOf, rowOf, sKI, sQR, sQT, sVS, vRow } from './state';

/** Address of virtual row r's q vector, or 0 for a padding row (RH rows per kv head, R rows in all). */
// @ts-ignore: decorator
@inline function qRow(qbase: usize, q0: i32, i0: i32, h0: i32, ng: i32, nr: i32, RH: i32, R: i32, r: i32, es: usize): usize {
  const h = r < R ? headOf(r, h0, ng, nr, RH) : -1;
  if (h < 0) return 0;
  return qbase + ((<usize>(q0 + rowOf(r, i0, nr, RH)) * <usize>gH + <usize>h) * <usize>gD) * es;
}

/** A row's 4 elements at d (d + 4 <= D), scaled; zero for a padding row. */
// @ts-ignore: decorator
@inline function ldq<T>(row: usize, d: i32, es: usize, qmul: v128): v128 {
  return row != 0 ? f32x4.mul(ld4<T>(row + <usize>d * es), qmul) : f32x4.splat(0);
}

/**
 * Q rows of the item -> sQT as [d][row] (pre-scaled, converted; padding rows up to qRows and
 * dims up to Dp zero), and for a decode item (`direct`: one group of 4 rows per kv head) also sQR, each group's
 * rows row-major by 4 dims and multiplied by rawScale<T>() (qkDirect reads float16 K raw; it may overflow
 * where max |q'| >= 2^16, and is then not used). Returns max over rows of sum |q'| for the precision check.
 */
export function stageQ<T>(qbase: usize, q0: i32, i0: i32, h0: i32, ng: i32, nr: i32, RH: i32, R: i32, qRows: i32, direct: bool): f32 {
  const D = gD, Dp = gDp;
  const D4 = D & ~3;
  const es = <usize>sizeof<T>();
  const qm = gQmul;
  const qmul = f32x4.splat(qm);
  const rs: f32 = rawScale<T>(), rsv = f32x4.splat(rs);
  let qn1: f32 = 0;
  for (let r = 0; r < qRows; r += 4) {
    const p0 = qRow(qbase, q0, i0, h0, ng, nr, RH, R, r, es), p1 = qRow(qbase, q0, i0, h0, ng, nr, RH, R, r + 1, es);
    const p2 = qRow(qbase, q0, i0, h0, ng, nr, RH, R, r + 2, es), p3 = qRow(qbase, q0, i0, h0, ng, nr, RH, R, r + 3, es);
    const qg = sQR + <usize>(r >> 2) * <usize>Dp * 16; // this group's sQR (decode items)
    let n0 = f32x4.splat(0), n1 = f32x4.splat(0), n2 = f32x4.splat(0), n3 = f32x4.splat(0);
    const dst = sQT + <usize>r * 4;
    let d = 0;
    for (; d < D4; d += 4) {
      const r0 = ldq<T>(p0, d, es, qmul), r1 = ldq<T>(p1, d, es, qmul), r2 = ldq<T>(p2, d, es, qmul), r3 = ldq<T>(p3, d, es, qmul);
      n0 = f32x4.add(n0, f32x4.abs(r0)); n1 = f32x4.add(n1, f32x4.abs(r1));
      n2 = f32x4.add(n2, f32x4.abs(r2)); n3 = f32x4.add(n3, f32x4.abs(r3));
      if (direct) { // decode items also keep Q row-major by 4 dims (sQR) for qkDirect
        const qr = qg + <usize>d * 16;
        if (isHalf<T>()) {
          v128.store(qr, f32x4.mul(r0, rsv)); v128.store(qr, f32x4.mul(r1, rsv), 16);
          v128.store(qr, f32x4.mul(r2, rsv), 32); v128.store(qr, f32x4.mul(r3, rsv), 48);
        } else {
          v128.store(qr, r0); v128.store(qr, r1, 16); v128.store(qr, r2, 32); v128.store(qr, r3, 48);
        }
      }
      storeT4(dst + <usize>d * QROW, QROW, r0, r1, r2, r3);
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
        if (direct) {
          const qr = qg + <usize>((d >> 2) << 6) + <usize>(d & 3) * 4;
          store<f32>(qr, x0 * rs); store<f32>(qr, x1 * rs, 16); store<f32>(qr, x2 * rs, 32); store<f32>(qr, x3 * rs, 48);
        }
      } else {
        v128.store(q, f32x4.splat(0));
        if (direct) {
          const qr = qg + <usize>((d >> 2) << 6) + <usize>(d & 3) * 4;
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
 * K rows j0..j0+n-1 -> sKI as [key/4][d][4 keys], zero padded (keys >= n, dims >= D); row c at
 * rowAt<M>(src, stride, c) + off (off: the kv head in a decode item's rows). Returns max |k| of the tile (NaN
 * ignored) for the precision check.
 */
export function stageK<T, M>(src: usize, stride: usize, off: usize, n: i32): f32 {
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
      let p0: usize, p1: usize, p2: usize, p3: usize;
      if (isPaged<M>()) {
        p0 = rowAt<M>(src, stride, c0) + off; p1 = rowAt<M>(src, stride, c0 + 1) + off;
        p2 = rowAt<M>(src, stride, c0 + 2) + off; p3 = rowAt<M>(src, stride, c0 + 3) + off;
      } else {
        p0 = src + off + <usize>c0 * stride; p1 = p0 + stride; p2 = p1 + stride; p3 = p2 + stride;
      }
      for (let d = 0; d < D4; d += 4) {
        const o = <usize>d * es;
        const r0 = ld4<T>(p0 + o), r1 = ld4<T>(p1 + o), r2 = ld4<T>(p2 + o), r3 = ld4<T>(p3 + o);
        kx = f32x4.pmax(kx, f32x4.pmax(f32x4.pmax(r0, r1), f32x4.pmax(r2, r3)));
        kn = f32x4.pmin(kn, f32x4.pmin(f32x4.pmin(r0, r1), f32x4.pmin(r2, r3)));
        storeT4(dst + <usize>d * 16, 16, r0, r1, r2, r3);
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
        const p = rowAt<M>(src, stride, c) + off;
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

/**
 * V rows j0..j0+n-1 of nk adjacent kv heads (row c at rowAt<M>(src, stride, c), head k Dv elements further)
 * -> sVS as [key][nk][Dvp] float32, rows vRow(nk, 4) bytes apart, zero padded. Returns whether it saw a NaN
 * or an infinity (when asked): either would reach rows the mask hides it from through 0 * NaN or 0 * Inf.
 */
export function stageV<T, M>(src: usize, stride: usize, n: i32, nk: i32, checkNonFinite: bool): bool {
  const Dv = gDv, Dvp = gDvp;
  const Dv4 = Dv & ~3;
  const es = <usize>sizeof<T>();
  const rowBytes = vRow(nk, 4);
  let bad = i32x4.splat(0);
  for (let c = 0; c < n; c++) {
    const row = rowAt<M>(src, stride, c);
    for (let k = 0; k < nk; k++) {
      const p = row + <usize>k * <usize>Dv * es;
      const q = sVS + <usize>c * rowBytes + <usize>k * <usize>Dvp * 4;
      let d = 0;
      for (; d < Dv4; d += 4) {
        const x = ld4<T>(p + <usize>d * es);
        const z = f32x4.sub(x, x); // 0 for finite x, NaN for NaN and +-Inf
        bad = v128.or(bad, f32x4.ne(z, z));
        v128.store(q + <usize>d * 4, x);
      }
      for (; d < Dv; d++) {
        const x = ld<T>(p + <usize>d * es);
        if (x - x != 0) bad = i32x4.splat(-1);
        store<f32>(q + <usize>d * 4, x);
      }
      for (; d < Dvp; d++) store<f32>(q + <usize>d * 4, 0);
    }
  }
  const nj = (n + 3) & ~3;
  if (nj > n) memory.fill(sVS + <usize>n * rowBytes, 0, <usize>(nj - n) * rowBytes);
  return checkNonFinite && v128.any_true(bad);
}

/**
 * float16 V rows as they are (raw halves) -> sVS as [key][nk][Dvp] halves, rows vRow(nk, 2) bytes apart, zero
 * padded: pv<u16> converts them as it loads (h2fRaw, against P scaled by 2^112). Returns false when one of
 * them is an Inf or a NaN, which the raw conversion would make finite: stageV then converts the tile exactly.
 */
export function stageVRaw<M>(src: usize, stride: usize, n: i32, nk: i32): bool {
  const Dv = gDv, Dvp = gDvp;
  const Dv8 = Dv & ~7;
  const rowBytes = vRow(nk, 2);
  const magnitude = i16x8.splat(0x7fff);
  let mx = i16x8.splat(0); // max of |h| as bits: an Inf or a NaN is >= 0x7c00
  let tail: u32 = 0;
  for (let c = 0; c < n; c++) {
    const row = rowAt<M>(src, stride, c);
    for (let k = 0; k < nk; k++) {
      const p = row + <usize>k * <usize>Dv * 2;
      const q = sVS + <usize>c * rowBytes + <usize>k * <usize>Dvp * 2;
      let d = 0;
      for (; d < Dv8; d += 8) {
        const x = v128.load(p + <usize>d * 2);
        mx = i16x8.max_u(mx, v128.and(x, magnitude));
        v128.store(q + <usize>d * 2, x);
      }
      for (; d < Dv; d++) {
        const h = <u32>load<u16>(p + <usize>d * 2);
        tail = max(tail, h & 0x7fff);
        store<u16>(q + <usize>d * 2, <u16>h);
      }
      for (; d < Dvp; d++) store<u16>(q + <usize>d * 2, 0);
    }
  }
  const nj = (n + 3) & ~3;
  if (nj > n) memory.fill(sVS + <usize>n * rowBytes, 0, <usize>(nj - n) * rowBytes);
  return tail < 0x7c00 && !v128.any_true(i16x8.gt_u(mx, i16x8.splat(0x7bff)));
}
