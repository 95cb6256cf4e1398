// float32 inputs on the tensor cores: each float32 x is carried as two float16 values, hi = f16(x * 2^e)
// and lo = f16(x * 2^e - hi), 22 significant bits of its 24, and every matrix product is three
// products, hi.hi + hi.lo + lo.hi, accumulated in float32 (the lo.lo term is below float32's own
// rounding). 2^e is one power of two per tensor (q, k, v), chosen from the tensor's largest finite |x|
// so that it lands in [2^14, 2^15): float16's range then holds every value, the low parts of the large
// ones stay normal, and the scaling itself is exact. The attention kernels (fwd_kernel.cuh and
// fwd_wgmma.cuh, kPlanes == 2) take 2^-(eq + ek) into the scores and 2^-(ev + kPExp) into the output.
// P is split the same way, scaled by 2^kPExp first (P is in [0, 1]: its low parts would otherwise be
// subnormal).
//
// A value is carried to within 2^-22 of itself; what decides a score's error is how the tensor cores
// accumulate the products (they truncate relative to the largest term), hence the order of the
// products in the kernels (notes/cuda-kernel.md, v13).
#pragma once
#include <cuda_fp16.h>

#include <cstdint>

namespace fa {

constexpr int kPExp = 15;  // P in [0, 1] is split as P * 2^15 (at most 32768, inside float16's range)

// The exponent e of a tensor whose largest finite |x| has the float32 bits maxBits (0: every element
// is zero or not finite): max * 2^e in [2^14, 2^15), clamped so that 2^e is a normal float.
__host__ __device__ __forceinline__ int splitExponent(uint32_t maxBits) {
  if (maxBits == 0) return 0;
  const int e = 14 - (int((maxBits >> 23) & 0xffu) - 127);
  return e < -126 ? -126 : e > 126 ? 126 : e;
}

// 2^e for -126 <= e <= 127, exactly.
__device__ __forceinline__ float pow2(int e) {
  return __int_as_float((e + 127) << 23);
}

// The two planes of a scaled value. An infinity must give float32's product with any finite value,
// never inf - inf or inf x 0 = NaN from one of the three products. In q and k (kInfInLo) it becomes
// hi = +-65504 and lo = +-inf: against the other operand's finite planes, the two products with this
// hi stay finite and the one with this lo is the infinity of the product's sign. In v it stays hi = +-inf with lo = 0:
// P's low plane is never 0 where P > 0 (splitPair), so lo.hi is the same infinity as hi.hi. NaN stays NaN.
template <bool kInfInLo>
__device__ __forceinline__ void splitValue(float x, __half& hi, __half& lo) {
  if (isinf(x)) {
    hi = __float2half_rn(kInfInLo ? copysignf(65504.f, x) : x);
    lo = __float2half_rn(kInfInLo ? x : 0.f);
    return;
  }
  hi = __float2half_rn(x);
  lo = __float2half_rn(x - __half2float(hi));  // (a NaN stays NaN in both)
}

// Two scores of P (already in [0, 1]) to the packed high and low float16 pairs of an A fragment. A
// positive P whose low part would be 0 gets the least float16 instead (2^-24, 2^-39 of P's scale): a
// key with an infinite V then gives inf * P + 0 * P + inf * 2^-24 = inf, not NaN from inf * 0. A
// masked key keeps P = 0 in both planes (its non-finite V is the fix-up's, fixup.h).
__device__ __forceinline__ void splitPair(float x0, float x1, uint32_t& hi, uint32_t& lo) {
  x0 *= float(1 << kPExp);
  x1 *= float(1 << kPExp);
  const __half2 h = __floats2half2_rn(x0, x1);
  const float2 hf = __half22float2(h);
  constexpr float kLeast = 5.9604644775390625e-8f;  // 2^-24
  float d0 = x0 - hf.x, d1 = x1 - hf.y;
  d0 = d0 == 0.f && x0 > 0.f ? kLeast : d0;
  d1 = d1 == 0.f && x1 > 0.f ? kLeast : d1;
  const __half2 l = __floats2half2_rn(d0, d1);
  hi = *reinterpret_cast<const uint32_t*>(&h);
  lo = *reinterpret_cast<const uint32_t*>(&l);
}

// P's two planes in the A operand layout (as packP in fwd_rows.cuh).
template <int kMT, int kNT>
__device__ __forceinline__ void packPSplit(const float (&s)[kMT][kNT][4], uint32_t (&hi)[kMT][kNT / 2][4],
                                           uint32_t (&lo)[kMT][kNT / 2][4]) {
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
    for (int kk = 0; kk < kNT / 2; ++kk) {
      splitPair(s[mt][2 * kk][0], s[mt][2 * kk][1], hi[mt][kk][0], lo[mt][kk][0]);
      splitPair(s[mt][2 * kk][2], s[mt][2 * kk][3], hi[mt][kk][1], lo[mt][kk][1]);
      splitPair(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1], hi[mt][kk][2], lo[mt][kk][2]);
      splitPair(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3], hi[mt][kk][3], lo[mt][kk][3]);
    }
}

// The factors the attention kernel applies: scores by 2^-(eq + ek), the output by 2^-(ev + kPExp).
struct SplitFactors {
  float score, out;
};
__device__ __forceinline__ SplitFactors splitFactors(const uint32_t* maxBits) {
  const int eq = splitExponent(__ldg(maxBits)), ek = splitExponent(__ldg(maxBits + 1));
  const int ev = splitExponent(__ldg(maxBits + 2));
  return SplitFactors{ldexpf(1.f, -(eq + ek)), ldexpf(1.f, -(ev + kPExp))};
}

}  // namespace fa
