import { describe, expect, it } from 'vitest';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../src/half.js';

describe('half conversions', () => {
  it('float16 round trips every finite value and rounds to nearest even', () => {
    for (let h = 0; h < 0x7c00; h++) expect(f32ToF16(f16ToF32(h))).toBe(h);
    expect(f16ToF32(0x3c00)).toBe(1);
    expect(f32ToF16(1 + 2 ** -11)).toBe(0x3c00); // tie to even
    expect(f32ToF16(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(f32ToF16(65520)).toBe(0x7c00);
    expect(f32ToF16(2 ** -25)).toBe(0); // tie to even (zero)
    expect(f32ToF16(2 ** -24)).toBe(1);
    expect(Number.isNaN(f16ToF32(f32ToF16(NaN)))).toBe(true);
  });
  it('bfloat16 keeps the float32 exponent and rounds to nearest even', () => {
    expect(bf16ToF32(f32ToBf16(1))).toBe(1);
    expect(f32ToBf16(1 + 2 ** -8)).toBe(0x3f80);
    expect(f32ToBf16(1 + 3 * 2 ** -8)).toBe(0x3f82);
    expect(bf16ToF32(f32ToBf16(3e38))).toBeCloseTo(3e38, -36);
    expect(Number.isNaN(bf16ToF32(f32ToBf16(NaN)))).toBe(true);
  });
});
