// SIMD helpers shared by the kernel: fused or split multiply-add, exp2, tanh and the dtype
// conversions. Everything is @inline so the kernel's hot loops see plain instructions.
//
// Dtype markers used as generic arguments throughout the kernel (no runtime cost, chosen at
// compile time with isSigned<T>() / isFloat<T>()):
//   f32 = float32 data, u16 = float16 bits, i16 = bfloat16 bits.

/** a * b + c: relaxed_madd (one FMA on x64) in the relaxed build, mul + add in the baseline one. */
// @ts-ignore: decorator
@inline export function madd(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) {
    return f32x4.relaxed_madd(a, b, c);
  } else {
    return f32x4.add(f32x4.mul(a, b), c);
  }
}

// Minimax fit of 2^f on [-0.5, 0.5] (max relative error 1.9e-7 evaluated in float32).
const E1: f32 = 0.6931470036506653;
const E2: f32 = 0.24022242426872253;
const E3: f32 = 0.05550733953714371;
const E4: f32 = 0.009671520441770554;
const E5: f32 = 0.0013264745939522982;
const MAGIC: f32 = 12582912.0; // 1.5 * 2^23: adding it rounds to the nearest integer

/**
 * 2^x per lane. x <= -127 (and -Infinity) gives exactly 0, NaN stays NaN. The integer part is
 * rounded through the float adder (magic number), so no trunc_sat is needed; the exponent is
 * built by shifting the rounded value's low bits into place.
 */
// @ts-ignore: decorator
@inline export function exp2v(x: v128): v128 {
  x = f32x4.pmax(x, f32x4.splat(-127.0)); // x < -127 ? -127 : x (NaN kept)
  const magic = f32x4.splat(MAGIC);
  const t = f32x4.add(x, magic);
  const n = f32x4.sub(t, magic);
  const f = f32x4.sub(x, n);
  let p = madd(f32x4.splat(E5), f, f32x4.splat(E4));
  p = madd(p, f, f32x4.splat(E3));
  p = madd(p, f, f32x4.splat(E2));
  p = madd(p, f, f32x4.splat(E1));
  p = madd(p, f, f32x4.splat(1.0));
  // low bits of t hold n; (n + 127) << 23 is 2^n as a float (n = -127 gives +0)
  const scale = i32x4.add(i32x4.shl(t, 23), i32x4.splat(127 << 23));
  return f32x4.mul(p, scale);
}

/**
 * tanh per lane: (1 - e) / (1 + e) with e = 2^(-2 log2(e) |x|), sign restored. Below |x| = 1/4,
 * 1 - e cancels (a large softcap gives small x), so there the odd series
 * x (1 - x^2/3 + 2x^4/15 - 17x^6/315 + 62x^8/2835) is used, within 2e-8 relative.
 */
// @ts-ignore: decorator
@inline export function tanhv(x: v128): v128 {
  const ax = f32x4.abs(x);
  const e = exp2v(f32x4.mul(ax, f32x4.splat(-2.8853900817779268))); // -2 / ln 2
  const one = f32x4.splat(1.0);
  const far = f32x4.div(f32x4.sub(one, e), f32x4.add(one, e));
  const x2 = f32x4.mul(ax, ax);
  let p = madd(f32x4.splat(<f32>(62.0 / 2835.0)), x2, f32x4.splat(<f32>(-17.0 / 315.0)));
  p = madd(p, x2, f32x4.splat(<f32>(2.0 / 15.0)));
  p = madd(p, x2, f32x4.splat(<f32>(-1.0 / 3.0)));
  p = madd(p, x2, one);
  const t = v128.bitselect(f32x4.mul(ax, p), far, f32x4.lt(ax, f32x4.splat(0.25)));
  return v128.or(t, v128.and(x, i32x4.splat(0x80000000)));
}

// ---- conversions ------------------------------------------------------------------------

/** float16 bits -> float32 (denormals, Inf and NaN exact). */
// @ts-ignore: decorator
@inline export function h2f(h: u32): f32 {
  const bits = (h & 0x7fff) << 13;
  let f = reinterpret<f32>(bits) * reinterpret<f32>(0x77800000); // * 2^112
  if ((h & 0x7c00) == 0x7c00) f = reinterpret<f32>(bits | 0x7f800000);
  return reinterpret<f32>(reinterpret<u32>(f) | ((h & 0x8000) << 16));
}

/** Four float16 values (zero-extended into i32 lanes) -> f32x4. */
// @ts-ignore: decorator
@inline export function h2fv(h: v128): v128 {
  const bits = i32x4.shl(v128.and(h, i32x4.splat(0x7fff)), 13);
  let f = f32x4.mul(bits, f32x4.splat(reinterpret<f32>(0x77800000)));
  const special = i32x4.eq(v128.and(h, i32x4.splat(0x7c00)), i32x4.splat(0x7c00));
  f = v128.bitselect(v128.or(bits, i32x4.splat(0x7f800000)), f, special);
  return v128.or(f, i32x4.shl(v128.and(h, i32x4.splat(0x8000)), 16));
}

// float16 "raw": a half's exponent and mantissa shifted into float32 position are a float32 of value
// h * 2^-112, exactly, for every finite half (a subnormal half becomes a float32 subnormal); two integer
// instructions instead of h2fv's ten. A half Inf or NaN becomes a finite value of magnitude >= 2^16 once
// scaled back (finite halves are at most 65504), so the loops that load raw halves check the magnitude
// and redo such a tile with the exact conversion. Where the values only multiply something, the scale
// goes into the other factor (qkDirect's Q): the products, and so the sums, are bit for bit the same.

/** 2^112: h2fRaw's values times this are the halves' values. */
export const HALF_RAW_SCALE: f32 = 5.192296858534828e+33;
/** A raw half whose value (times HALF_RAW_SCALE) reaches this magnitude was an Inf or a NaN. */
export const HALF_SPECIAL: f32 = 65536;
/** Q rows' L1 norm (a bound on max |q'|) below which q' * HALF_RAW_SCALE cannot overflow float32. */
export const HALF_FOLD_MAX: f32 = 32768;

/** Whether T is the float16 marker (a compile-time constant). */
// @ts-ignore: decorator
@inline export function isHalf<T>(): bool {
  return !isFloat<T>() && !isSigned<T>();
}

/**
 * The lanes h2fRaw keeps after its shift: the sign and the shifted exponent and mantissa (the sign's copies
 * in bits 30..28 cleared). Loops load it from memory (state.ts's sMask) before they start: V8 would rebuild
 * a 128-bit constant in every iteration.
 */
export const HALF_MASK: i32 = 0x8fffffff;

/** Four float16 values, sign-extended into i32 lanes -> f32x4 of value h * 2^-112 (Inf, NaN: finite, see above). */
// @ts-ignore: decorator
@inline export function h2fRaw(h: v128, mask: v128): v128 {
  return v128.and(i32x4.shl(h, 13), mask);
}

/** Four consecutive elements of dtype T at p as f32x4: float16 raw (h2fRaw), float32 and bfloat16 as ld4. */
// @ts-ignore: decorator
@inline export function ld4raw<T>(p: usize, mask: v128): v128 { // mask: HALF_MASK in every lane
  if (isHalf<T>()) return h2fRaw(v128.load16x4_s(p), mask);
  return ld4<T>(p);
}

/** One element of dtype T at p: float16 raw, the others as ld. */
// @ts-ignore: decorator
@inline export function ldraw<T>(p: usize): f32 {
  if (isHalf<T>()) return reinterpret<f32>((<u32><i32>load<i16>(p) << 13) & 0x8fffffff);
  return ld<T>(p);
}

/** What ld4raw<T>'s values are multiplied by to be T's values. */
// @ts-ignore: decorator
@inline export function rawScale<T>(): f32 {
  return isHalf<T>() ? HALF_RAW_SCALE : 1;
}

/** float32 -> float16 bits, round to nearest even, NaN stays NaN. */
export function f2h(x: f32): u16 {
  const u = reinterpret<u32>(x);
  const sign = (u >>> 16) & 0x8000;
  const e = <i32>((u >>> 23) & 0xff);
  let m = u & 0x7fffff;
  if (e == 0xff) return <u16>(sign | 0x7c00 | (m != 0 ? 0x200 : 0));
  let ex = e - 127 + 15;
  if (ex >= 31) return <u16>(sign | 0x7c00);
  if (ex <= 0) {
    if (ex < -10) return <u16>sign;
    m |= 0x800000;
    const shift = <u32>(14 - ex);
    const half: u32 = 1 << (shift - 1);
    const rest = m & ((<u32>1 << shift) - 1);
    let r = m >>> shift;
    if (rest > half || (rest == half && (r & 1) != 0)) r++;
    return <u16>(sign | r);
  }
  let r = m >>> 13;
  const rest = m & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (r & 1) != 0)) {
    r++;
    if (r == 0x400) {
      r = 0;
      ex++;
      if (ex >= 31) return <u16>(sign | 0x7c00);
    }
  }
  return <u16>(sign | (<u32>ex << 10) | r);
}

/** float32 -> bfloat16 bits, round to nearest even, NaN stays NaN. */
// @ts-ignore: decorator
@inline export function f2bf(x: f32): u16 {
  const u = reinterpret<u32>(x);
  if ((u & 0x7fffffff) > 0x7f800000) return <u16>((u >>> 16) | 0x40);
  return <u16>((u + 0x7fff + ((u >>> 16) & 1)) >>> 16);
}

/** One element of dtype T at p, as float32. */
// @ts-ignore: decorator
@inline export function ld<T>(p: usize): f32 {
  if (isFloat<T>()) return load<f32>(p);
  else if (isSigned<T>()) return reinterpret<f32>(<u32>load<u16>(p) << 16); // bfloat16
  else return h2f(<u32>load<u16>(p)); // float16
}

/** Four consecutive elements of dtype T at p, as f32x4 (halves converted as they are loaded). */
// @ts-ignore: decorator
@inline export function ld4<T>(p: usize): v128 {
  if (isFloat<T>()) return v128.load(p);
  else if (isSigned<T>()) return i32x4.shl(v128.load16x4_u(p), 16);
  else return h2fv(v128.load16x4_u(p));
}

/** Stores x as dtype T at p. */
// @ts-ignore: decorator
@inline export function st<T>(p: usize, x: f32): void {
  if (isFloat<T>()) store<f32>(p, x);
  else if (isSigned<T>()) store<u16>(p, f2bf(x));
  else store<u16>(p, f2h(x));
}

// ---- lane shuffles ------------------------------------------------------------------------

/** [sum(a), sum(b), sum(c), sum(d)] of four vectors. */
// @ts-ignore: decorator
@inline export function hsum4(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = f32x4.add(v128.shuffle<f32>(a, b, 0, 4, 1, 5), v128.shuffle<f32>(a, b, 2, 6, 3, 7)); // a0+a2 b0+b2 a1+a3 b1+b3
  const cd = f32x4.add(v128.shuffle<f32>(c, d, 0, 4, 1, 5), v128.shuffle<f32>(c, d, 2, 6, 3, 7));
  return f32x4.add(v128.shuffle<f32>(ab, cd, 0, 1, 4, 5), v128.shuffle<f32>(ab, cd, 2, 3, 6, 7));
}

/**
 * Rows r0..r3 of a 4x4 block stored as its columns, `stride` bytes apart from p: how Q^T (stride
 * QROW) and the 4-key groups of K (stride 16) are staged. The shuffles keep everything in
 * registers; the stores' address arithmetic folds into their offsets once inlined.
 */
// @ts-ignore: decorator
@inline export function storeT4(p: usize, stride: usize, r0: v128, r1: v128, r2: v128, r3: v128): void {
  const t0 = v128.shuffle<f32>(r0, r1, 0, 4, 1, 5), t1 = v128.shuffle<f32>(r2, r3, 0, 4, 1, 5); // r0.0 r1.0 r0.1 r1.1, ...
  const t2 = v128.shuffle<f32>(r0, r1, 2, 6, 3, 7), t3 = v128.shuffle<f32>(r2, r3, 2, 6, 3, 7);
  v128.store(p, v128.shuffle<f32>(t0, t1, 0, 1, 4, 5));
  v128.store(p + stride, v128.shuffle<f32>(t0, t1, 2, 3, 6, 7));
  v128.store(p + 2 * stride, v128.shuffle<f32>(t2, t3, 0, 1, 4, 5));
  v128.store(p + 3 * stride, v128.shuffle<f32>(t2, t3, 2, 3, 6, 7));
}

/** max over lanes of max(x, -n), for x >= 0 >= n (running max and min). */
// @ts-ignore: decorator
@inline export function vabsmax(x: v128, n: v128): f32 {
  let m = f32x4.pmax(x, f32x4.neg(n));
  m = f32x4.pmax(m, v128.shuffle<f32>(m, m, 2, 3, 0, 1));
  m = f32x4.pmax(m, v128.shuffle<f32>(m, m, 1, 0, 3, 2));
  return f32x4.extract_lane(m, 0);
}
