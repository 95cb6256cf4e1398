/** float16 / bfloat16 <-> float32 conversions on the host (round to nearest even, NaN kept NaN). */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

let f16Table: Float32Array | null = null;

/** All 65536 float16 values as float32, built once (256 KiB) so decoding is one load. */
export function float16Table(): Float32Array {
  if (f16Table) return f16Table;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    if (e === 0) t[h] = s * m * 2 ** -24;
    else if (e === 31) t[h] = m ? NaN : s * Infinity;
    else t[h] = s * (1 + m / 1024) * 2 ** (e - 15);
  }
  return (f16Table = t);
}

export function f16ToF32(h: number): number {
  return float16Table()[h & 0xffff]!;
}

export function bf16ToF32(b: number): number {
  u32[0] = (b & 0xffff) << 16;
  return f32[0]!;
}

export function f32ToBf16(x: number): number {
  f32[0] = x;
  const u = u32[0]!;
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) | 0x40) & 0xffff;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

export function f32ToF16(x: number): number {
  f32[0] = x;
  const u = u32[0]!;
  const sign = (u >>> 16) & 0x8000;
  const e = (u >>> 23) & 0xff;
  let m = u & 0x7fffff;
  if (e === 0xff) return sign | 0x7c00 | (m ? 0x200 : 0);
  let ex = e - 127 + 15;
  if (ex >= 31) return sign | 0x7c00;
  if (ex <= 0) {
    if (ex < -10) return sign;
    m |= 0x800000;
    const shift = 14 - ex;
    const half = 1 << (shift - 1);
    const rest = m & ((1 << shift) - 1);
    let r = m >>> shift;
    if (rest > half || (rest === half && r & 1)) r++;
    return sign | r;
  }
  let r = m >>> 13;
  const rest = m & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && r & 1)) {
    r++;
    if (r === 0x400) {
      r = 0;
      ex++;
      if (ex >= 31) return sign | 0x7c00;
    }
  }
  return sign | (ex << 10) | r;
}

/** Encodes float32 values into a new array of the given dtype. */
export function encode(
  values: ArrayLike<number>,
  dtype: 'float32' | 'float16' | 'bfloat16',
): Float32Array | Uint16Array {
  if (dtype === 'float32') return Float32Array.from(values);
  const out = new Uint16Array(values.length);
  const enc = dtype === 'float16' ? f32ToF16 : f32ToBf16;
  for (let i = 0; i < values.length; i++) out[i] = enc(values[i]!);
  return out;
}

/** Decodes any supported data to float64 (for the reference and for checks). */
export function decode(data: Float32Array | Uint16Array, dtype: 'float32' | 'float16' | 'bfloat16'): Float64Array {
  const out = new Float64Array(data.length);
  if (dtype === 'float32') out.set(data);
  else if (dtype === 'float16') {
    const t = float16Table();
    for (let i = 0; i < data.length; i++) out[i] = t[data[i]!]!;
  } else for (let i = 0; i < data.length; i++) out[i] = bf16ToF32(data[i]!);
  return out;
}
