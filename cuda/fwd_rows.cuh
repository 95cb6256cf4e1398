// The per-row part of the forward pass, shared by both kernels (fwd_kernel.cuh on mma.sync,
// fwd_wgmma.cuh on wgmma): score transforms and masks, the online softmax, P's repacking and
// the epilogue. Both kernels hold their fragments in the same layout, that of an m16n8
// accumulator: each warp owns kMT m16 tiles of rows; s[mt][nt][e] is row lane/4 + 8*(e/2) and
// column 8*nt + 2*(lane%4) + e%2 of tile mt (a wgmma m64nN accumulator is this layout with
// kMT = 1 for each of its four warps), and o[mt][dt][e] likewise for the output columns.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cstdint>
#include <type_traits>

#include "params.h"
#include "ptx.h"

namespace fa {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// v[0] = op over v[0 .. 2W), pairwise: a tree of depth log2(2W) instead of a chain of 2W - 1.
template <int W, class Op>
__device__ __forceinline__ void treeReduce(float* v, Op op) {
  if constexpr (W >= 1) {
#pragma unroll
    for (int i = 0; i < W; ++i) v[i] = op(v[i], v[i + W]);
    treeReduce<W / 2>(v, op);
  }
}

// An item's key blocks [nLo, nHi) (its split's share) and the diagonals of its first and last
// real rows, for the "does this tile need a mask" test.
struct ItemSpan {
  int nLo, nHi, rowsTotal, diagFirst, diagLast;
  __device__ __forceinline__ ItemSpan(const FwdParams& p, const WorkItem& w, int bm, int bn) {
    const int G = p.group, m0 = w.mBlock * bm;
    rowsTotal = w.lq * G;
    keyBlockRange(w.mBlock, bm, bn, w.lq, w.lk, G, p.windowLeft, p.windowRight, nLo, nHi);
    if (p.numSplits > 1) splitRange(nLo, nHi, w.split, p.numSplits, nLo, nHi);
    const int lastRow = (m0 + bm < rowsTotal ? m0 + bm : rowsTotal) - 1;
    diagFirst = m0 / G + w.lk - w.lq;
    diagLast = lastRow / G + w.lk - w.lq;
  }
  // Whether key tile [n0, n0 + bn) crosses the sequence end or a causal/window boundary of any row.
  __device__ __forceinline__ bool needsMask(const FwdParams& p, int n0, int bn, int lk) const {
    return n0 + bn > lk || n0 + bn - 1 > diagFirst + p.windowRight || n0 < diagLast - p.windowLeft;
  }
};

// Where this thread's rows sit: row (m0 + warpRow + mt*16 + hr*8 + lane/4) of the item's
// (query row, head of the group) rows; its query's diagonal is row / G + lk - lq.
struct RowFrame {
  int myRow;  // m0 + warpRow + lane / 4
  int G, lq, lk;
  __device__ __forceinline__ int diagOf(int mt, int hr) const { return (myRow + mt * 16 + hr * 8) / G + lk - lq; }
};

// softcap * tanh(x * softmaxScale / softcap) in the log2 domain, as 1 - 2 / (e^2u + 1): two MUFU
// operations (ex2, rcp) and three others, where tanhf adds a polynomial for small |u| (relative
// accuracy there, which a score does not need: the error here is absolute, ~2e-7 of the softcap in a
// float32 emulation over u in [-40, 40]);
// u = +-inf gives +-1 and NaN stays NaN. A softcapped tile is bound by the MUFU rate (three
// operations per score with the softmax's ex2); e^2u on the FMA pipe for three elements in four
// measured no faster (notes/cuda-kernel.md v14).
__device__ __forceinline__ float softcapScore(const FwdParams& p, float x) {
  const float e = ex2(x * p.softcapInv2Log2);  // e^(2u), u = x * softmaxScale / softcap
  return p.softcapLog2 * fmaf(-2.f, rcp(e + 1.f), 1.f);
}

// ALiBi slopes (log2 domain) of this thread's rows, read once per work item: slope[mt][hr] of row
// myRow + 16 mt + 8 hr. Zero where the call has none.
template <int kMT>
__device__ __forceinline__ void alibiRows(const FwdParams& p, const RowFrame& f, int hk, float (&slope)[kMT][2]) {
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      const int rr = f.myRow + mt * 16 + hr * 8, i = rr / f.G;
      slope[mt][hr] = p.alibiSlopes ? __ldg(p.alibiSlopes + hk * f.G + (rr - i * f.G)) * kLog2e : 0.f;
    }
}

// Scores to the log2 domain: scale (any sign), softcap, ALiBi, then the mask replaces (never
// adds to) the score, so a NaN under the mask cannot leak into the row. kFull keeps the
// scores unscaled (the scale is applied in the exponent) and has no softcap or ALiBi. The ALiBi
// distance |diag - j| is converted once per row and tile (the integer conversion runs at a quarter
// of the float rate) and the column offsets within the tile are constants.
template <int kMT, int kNT, bool kFull>
__device__ __forceinline__ void transformScores(const FwdParams& p, float (&s)[kMT][kNT][4], const RowFrame& f,
                                                int colBase, bool needMask, const float (&slope)[kMT][2]) {
  if (kFull) {
    // scores stay unscaled: the scale is applied in the exponent
  } else if (p.softcapInv != 0.f) {
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
      for (int nt = 0; nt < kNT; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[mt][nt][e] = softcapScore(p, s[mt][nt][e]);
  } else {
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
      for (int nt = 0; nt < kNT; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[mt][nt][e] *= p.scaleLog2;
  }
  if (!kFull && p.alibiSlopes) {
    float dist[kMT][2];  // diag - colBase; exact below 2^24
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) dist[mt][hr] = float(f.diagOf(mt, hr) - colBase);
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
      for (int nt = 0; nt < kNT; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e)
          s[mt][nt][e] -= slope[mt][e >> 1] * fabsf(dist[mt][e >> 1] - float(nt * 8 + (e & 1)));
  }
  if (needMask) {
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        const int diag = f.diagOf(mt, hr);
        const int jLo = diag - p.windowLeft;
        int jHi = diag + p.windowRight;
        jHi = jHi < f.lk - 1 ? jHi : f.lk - 1;
#pragma unroll
        for (int nt = 0; nt < kNT; ++nt)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const int j = colBase + nt * 8 + e;
            if (j < jLo || j > jHi) s[mt][nt][hr * 2 + e] = -INFINITY;
          }
      }
  }
}

// Online softmax in the log2 domain: row max and sum are of s * sc (sc = 1 when the scores
// are already scaled). A row that has seen only masked keys keeps max -inf; it is
// exponentiated against 0 instead, so its probabilities are exactly 0 and never NaN. Leaves
// the probabilities in s, this thread's partial row sums in rowSum (the quad is reduced once,
// in the epilogue) and in corr the factor O must be rescaled by (rescaleO; not after the first
// tile, where O is still 0).
// Reductions inside a row: pairwise trees where the tile has at most 8 n8 tiles of scores
// (d128, d256, the 16-row tile: +1-2% on an H100, and the quad shuffles of all the thread's
// rows are issued together); chains on the 128x128 d64 tile, where the tree's extra live
// registers spilled and cost 2-3% (notes/cuda-kernel.md).
template <int kMT, int kNT, bool kTree>
__device__ __forceinline__ void onlineSoftmax(float (&s)[kMT][kNT][4], float (&rowMax)[kMT][2], float (&rowSum)[kMT][2],
                                              float sc, float (&corr)[kMT][2]) {
  float rowMx[kMT][2];  // kTree: the rows' maxima, reduced over the quad before the exponentials
  if constexpr (kTree) {
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        float m[kNT];
#pragma unroll
        for (int nt = 0; nt < kNT; ++nt) m[nt] = fmaxf(s[mt][nt][hr * 2], s[mt][nt][hr * 2 + 1]);
        treeReduce<kNT / 2>(m, [](float x, float y) { return fmaxf(x, y); });
        rowMx[mt][hr] = m[0];
      }
#pragma unroll
    for (int sh = 1; sh <= 2; sh *= 2)
#pragma unroll
      for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
        for (int hr = 0; hr < 2; ++hr)
          rowMx[mt][hr] = fmaxf(rowMx[mt][hr], __shfl_xor_sync(0xffffffffu, rowMx[mt][hr], sh));
  }
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      float mx;
      if constexpr (kTree) {
        mx = rowMx[mt][hr];
      } else {
        mx = fmaxf(s[mt][0][hr * 2], s[mt][0][hr * 2 + 1]);
#pragma unroll
        for (int nt = 1; nt < kNT; ++nt) mx = fmaxf(mx, fmaxf(s[mt][nt][hr * 2], s[mt][nt][hr * 2 + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      }
      mx = fmaxf(rowMax[mt][hr], mx * sc);
      const float mUse = mx == -INFINITY ? 0.f : mx;
      corr[mt][hr] = ex2(rowMax[mt][hr] - mUse);
      rowMax[mt][hr] = mx;
      if constexpr (kTree) {
        float sum[kNT];
#pragma unroll
        for (int nt = 0; nt < kNT; ++nt) {
          const float p0 = ex2(fmaf(s[mt][nt][hr * 2], sc, -mUse)), p1 = ex2(fmaf(s[mt][nt][hr * 2 + 1], sc, -mUse));
          s[mt][nt][hr * 2] = p0;
          s[mt][nt][hr * 2 + 1] = p1;
          sum[nt] = p0 + p1;
        }
        treeReduce<kNT / 2>(sum, [](float x, float y) { return x + y; });
        rowSum[mt][hr] = fmaf(rowSum[mt][hr], corr[mt][hr], sum[0]);
      } else {
        float acc = rowSum[mt][hr] * corr[mt][hr];
#pragma unroll
        for (int nt = 0; nt < kNT; ++nt) {
          const float p0 = ex2(fmaf(s[mt][nt][hr * 2], sc, -mUse)), p1 = ex2(fmaf(s[mt][nt][hr * 2 + 1], sc, -mUse));
          s[mt][nt][hr * 2] = p0;
          s[mt][nt][hr * 2 + 1] = p1;
          acc += p0 + p1;
        }
        rowSum[mt][hr] = acc;
      }
    }
}

// f(mt, t, e) for every element of a [kA][kB][4] fragment array (the m16n8 accumulator layout).
template <int kA, int kB, class F>
__device__ __forceinline__ void eachFrag(F&& f) {
#pragma unroll
  for (int a = 0; a < kA; ++a)
#pragma unroll
    for (int b = 0; b < kB; ++b)
#pragma unroll
      for (int e = 0; e < 4; ++e) f(a, b, e);
}

template <int kMT, int kOT>
__device__ __forceinline__ void rescaleO(float (&o)[kMT][kOT][4], const float (&corr)[kMT][2]) {
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
    for (int dt = 0; dt < kOT; ++dt)
#pragma unroll
      for (int e = 0; e < 4; ++e) o[mt][dt][e] *= corr[mt][e >> 1];
}

// P to the A operand layout of m16n8k16 (and of wgmma with A in registers): two n8 tiles of
// scores make one k16 slice; half the registers of the float scores.
template <typename T, int kMT, int kNT>
__device__ __forceinline__ void packP(const float (&s)[kMT][kNT][4], uint32_t (&pk)[kMT][kNT / 2][4]) {
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
    for (int kk = 0; kk < kNT / 2; ++kk) {
      pk[mt][kk][0] = pack2<T>(s[mt][2 * kk][0], s[mt][2 * kk][1]);
      pk[mt][kk][1] = pack2<T>(s[mt][2 * kk][2], s[mt][2 * kk][3]);
      pk[mt][kk][2] = pack2<T>(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
      pk[mt][kk][3] = pack2<T>(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
    }
}

// The end of a row's softmax. mx: the row's max (log2 domain; -inf when it saw no key), sum: its
// sum of 2^(s - mUse) (mUse = mx, or 0 when mx is -inf), the accumulators relative to 2^mUse.
// Returns the factor that turns the accumulators into the output and the row's lse (natural log).
// sum == 0: the row saw no key: out 0, lse -inf. A sink (sinkLog2 > -inf: its logit * log2 e)
// joins the denominator with no value row, so an empty row gets out 0 and lse = the sink. A NaN
// sum propagates.
struct RowEnd {
  float scale, lse;
};
__device__ __forceinline__ RowEnd finishRow(float mx, float sum, float sinkLog2) {
  const bool empty = sum == 0.f;
  const float mUse = mx == -INFINITY ? 0.f : mx;
  if (sinkLog2 == -INFINITY) return RowEnd{empty ? 0.f : 1.f / sum, empty ? -INFINITY : (mUse + log2f(sum)) * kLn2};
  const float m = empty ? sinkLog2 : fmaxf(mUse, sinkLog2);
  const float rel = empty ? 0.f : ex2(mUse - m);  // the accumulators' scale against 2^m
  const float denom = fmaf(sum, rel, ex2(sinkLog2 - m));
  return RowEnd{empty ? 0.f : rel / denom, (m + log2f(denom)) * kLn2};
}

// Epilogue (finishRow says what an empty row gets; a sink applies here when the call is not split,
// in the combine kernel when it is). Stores
// each thread's 4-byte pairs straight from registers (numSplits == 1), or float32 partials and
// partial lse for the combine kernel.
template <typename T, int kMT, int kOT, bool kFull>
__device__ __forceinline__ void storeRows(const FwdParams& p, const WorkItem& w, const float (&o)[kMT][kOT][4],
                                          const float (&rowMax)[kMT][2], const float (&rowSum)[kMT][2], int m0,
                                          int warpRow, int lane, int rowsTotal) {
  const int H = p.numHeads, G = p.group, hk = w.hk, qStart = w.qStart;
  const bool split = p.numSplits > 1;
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      float sum = rowSum[mt][hr];
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      sum += __shfl_xor_sync(0xffffffffu, sum, 2);
      const int lr = warpRow + mt * 16 + hr * 8 + (lane >> 2);  // row in the block
      const int rr = m0 + lr;
      if (rr >= rowsTotal) continue;
      const int i = rr / G, h = hk * G + (rr - i * G);
      const bool empty = sum == 0.f;
      const float sink = !split && p.sinks ? __ldg(p.sinks + h) * kLog2e : -INFINITY;
      const RowEnd end = finishRow(rowMax[mt][hr], sum, sink);
      const float inv = end.scale, lse = end.lse;
      const int64_t row = (int64_t)(qStart + i) * H + h;
      if (split) {
        const int64_t rows = (int64_t)p.totalQ * H;
        float* dst = p.oAccum + ((int64_t)w.split * rows + row) * p.dv + (lane & 3) * 2;
#pragma unroll
        for (int dt = 0; dt < kOT; ++dt)
          if (kFull || dt * 8 < p.dv)
            *reinterpret_cast<float2*>(dst + dt * 8) =
                empty ? make_float2(0.f, 0.f) : make_float2(o[mt][dt][hr * 2] * inv, o[mt][dt][hr * 2 + 1] * inv);
        if ((lane & 3) == 0) p.lseAccum[(int64_t)w.split * rows + row] = lse;
      } else {
        T* dst =
            static_cast<T*>(p.out) + (int64_t)(qStart + i) * p.oRowStride + (int64_t)h * p.oHeadStride + (lane & 3) * 2;
#pragma unroll
        for (int dt = 0; dt < kOT; ++dt)
          if (kFull || dt * 8 < p.dv) {
            if constexpr (std::is_same<T, float>::value)  // float32 pairs (split.cuh): a float32 output
              *reinterpret_cast<float2*>(dst + dt * 8) =
                  empty ? make_float2(0.f, 0.f) : make_float2(o[mt][dt][hr * 2] * inv, o[mt][dt][hr * 2 + 1] * inv);
            else
              *reinterpret_cast<uint32_t*>(dst + dt * 8) =
                  empty ? 0u : pack2<T>(o[mt][dt][hr * 2] * inv, o[mt][dt][hr * 2 + 1] * inv);
          }
        if (p.lse && (lane & 3) == 0) {
          const int64_t at =
              p.lseFixedS > 0 ? (int64_t)(w.b * H + h) * p.lseFixedS + i : (int64_t)h * p.totalQ + qStart + i;
          p.lse[at] = lse;
        }
      }
    }
}

}  // namespace fa
