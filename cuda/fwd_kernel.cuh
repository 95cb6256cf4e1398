// FlashAttention-2 forward, one template for every head-dim class, dtype and tile.
//
// A block owns one work unit: (sequence b, kv head hk, block of query rows, key split). Its rows are
// (query row, head of the group) pairs, row r = i * group + g, so grouped heads that share
// K/V are computed together and K/V tiles are read once per group. Each warp owns kMT m16
// tiles of rows; S = Q K^T and O += P V run on mma.sync m16n8k16 with float32 accumulators,
// operands fed by ldmatrix from XOR-swizzled shared memory (16-byte chunk c of row r is stored
// at chunk c ^ (r & 7): the 8 row addresses of every ldmatrix phase hit 8 different bank
// quads, and so do the cp.async writes). P never leaves registers: the S accumulator layout of
// two n8 tiles is exactly the A operand layout of the next mma.
//
// Pipeline (FlashAttention-2's): K(j) is in smem when iteration j starts; V(j) is fetched with
// cp.async while S(j) is computed, and K(j-1) while P V(j) is computed, so every load has a
// full matrix product to land in. Key tiles run from the last to the first, so the tiles that
// need masking (diagonal / sequence end) come first and the rest skip the mask entirely.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cstdint>

#include "params.h"
#include "ptx.h"
#include "tile.h"

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

// kFull: the fast copy of the loop, for the common call: the head dims fill the class
// (d == dv == kD, so the k-slice loops need no guards and the compiler can software-pipeline
// ldmatrix across them), no softcap, no ALiBi and a positive scale. Its scores stay unscaled
// until the exponent, exp2(s * scale - max * scale), one FFMA per score as in FlashAttention-2
// (a positive scale keeps the max where it is). Every other call takes the general copy.
template <class C, typename T, bool kFull>
__device__ __forceinline__ void fwdBody(const FwdParams& p, unsigned char* smem) {
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const WorkItem w = p.work[blockIdx.x];
  const int hk = w.hk;
  const int qStart = w.qStart, lq = w.lq, kStart = w.kStart, lk = w.lk;
  const int G = p.group;
  const int m0 = w.mBlock * C::kBM;
  const int rowsTotal = lq * G;
  int nLo, nHi;
  keyBlockRange(w.mBlock, C::kBM, C::kBN, lq, lk, G, p.windowLeft, p.windowRight, nLo, nHi);
  if (p.numSplits > 1) splitRange(nLo, nHi, w.split, p.numSplits, nLo, nHi);
  // Diagonals of the block's first and last real rows, for the "does this tile need a mask" test.
  const int lastRow = (m0 + C::kBM < rowsTotal ? m0 + C::kBM : rowsTotal) - 1;
  const int diagFirst = m0 / G + lk - lq, diagLast = lastRow / G + lk - lq;

  const T* qBase = static_cast<const T*>(p.q);
  const T* kBase = static_cast<const T*>(p.k);
  const T* vBase = static_cast<const T*>(p.v);
  constexpr int kRowBytes = C::kD * 2;
  const uint32_t sQa = smemAddr(smem);
  const uint32_t sKa = sQa + C::kBM * kRowBytes, sVa = sKa + C::kBN * kRowBytes;

  // Loads: thread tid moves chunks cl, cl + kCL, ... of rows rowOff, rowOff + kRowsPerPass, ...
  // (rows kRowsPerPass apart share row & 7, so one base serves them all).
  const int cl = tid % C::kCL, rowOff = tid / C::kCL;
  const uint32_t stBase = rowOff * kRowBytes + ((cl ^ (rowOff & 7)) << 4);
  // Address of chunk cl + kCL * j of row rowOff + pass * kRowsPerPass.
  auto stAddr = [&](uint32_t tileBase, int pass, int j) {
    const uint32_t b = tileBase + stBase + pass * C::kRowsPerPass * kRowBytes;
    return C::kCL >= 8 ? b + C::kCL * j * 16 : swz(b, C::kCL * j);
  };

  auto loadKV = [&](uint32_t tileBase, const T* base, int64_t rowStride, int64_t headOff, int dValid, int nb) {
    tileBase = opaque(tileBase);
    const int n0 = nb * C::kBN;
    const T* src = base + (int64_t)(kStart + n0 + rowOff) * rowStride + headOff + cl * 8;
    const int64_t step = C::kRowsPerPass * rowStride;
#pragma unroll
    for (int pass = 0; pass < C::kBN / C::kRowsPerPass; ++pass, src += step) {
      // Rows past the sequence are zero-filled: never read another sequence's keys.
      const bool rowOk = n0 + rowOff + pass * C::kRowsPerPass < lk;
#pragma unroll
      for (int j = 0; j < C::kChunks / C::kCL; ++j) {
        const bool ok = rowOk && (kFull || (cl + C::kCL * j) * 8 < dValid);
        cpAsync16(stAddr(tileBase, pass, j), ok ? src + C::kCL * j * 8 : base, ok);
      }
    }
  };

  if (nHi > nLo) {
#pragma unroll
    for (int pass = 0; pass < C::kBM / C::kRowsPerPass; ++pass) {
      const int rr = m0 + rowOff + pass * C::kRowsPerPass;
      const int i = rr / G, g = rr - i * G;
      const bool rowOk = rr < rowsTotal;
      const T* src = qBase + (int64_t)(qStart + i) * p.qRowStride + (int64_t)(hk * G + g) * p.qHeadStride + cl * 8;
#pragma unroll
      for (int j = 0; j < C::kChunks / C::kCL; ++j) {
        const bool ok = rowOk && (kFull || (cl + C::kCL * j) * 8 < p.d);
        cpAsync16(stAddr(sQa, pass, j), ok ? src + C::kCL * j * 8 : qBase, ok);
      }
    }
    loadKV(sKa, kBase, p.kRowStride, (int64_t)hk * p.kHeadStride, p.d, nHi - 1);
    cpAsyncCommit();
    // V of the first tile too, as its own group: the first iteration waits for Q + K only, so
    // V's latency overlaps Q + K's instead of following it (short blocks start all at once).
    loadKV(sVa, vBase, p.vRowStride, (int64_t)hk * p.vHeadStride, p.dv, nHi - 1);
    cpAsyncCommit();
  }

  // This thread's accumulator rows: m tile mt, half hr holds local row warpRow + mt*16 + lane/4 + hr*8.
  const int warpRow = warp * 16 * C::kMT;
  const int myRow = m0 + warpRow + (lane >> 2);  // + mt * 16 + hr * 8
  auto diagOf = [&](int mt, int hr) { return (myRow + mt * 16 + hr * 8) / G + lk - lq; };

  // ldmatrix row addresses. Each 8-lane phase reads 8 consecutive rows, so row & 7 == lane & 7
  // and logical chunk 2*kk + c sits at (2*kk) ^ (c ^ (lane & 7)): base carries c ^ (lane & 7).
  const uint32_t aOff = (warpRow + (lane & 15)) * kRowBytes + (((lane >> 4) ^ (lane & 7)) << 4);
  const uint32_t bOff = ((lane & 7) + ((lane >> 4) << 3)) * kRowBytes + ((((lane >> 3) & 1) ^ (lane & 7)) << 4);
  const uint32_t vOff = ((lane & 7) + ((lane >> 3) & 1) * 8) * kRowBytes + (((lane >> 4) ^ (lane & 7)) << 4);

  float o[C::kMT][C::kOT][4];
  float rowMax[C::kMT][2], rowSum[C::kMT][2];
#pragma unroll
  for (int mt = 0; mt < C::kMT; ++mt) {
#pragma unroll
    for (int dt = 0; dt < C::kOT; ++dt)
#pragma unroll
      for (int e = 0; e < 4; ++e) o[mt][dt][e] = 0.f;
    rowMax[mt][0] = rowMax[mt][1] = -INFINITY;
    rowSum[mt][0] = rowSum[mt][1] = 0.f;
  }

  for (int nb = nHi - 1; nb >= nLo; --nb) {
    const bool first = nb == nHi - 1;
    if (first)
      cpAsyncWait<1>();  // Q + K(nb) landed; V(nb), issued with them, may still be in flight
    else
      cpAsyncWait<0>();
    __syncthreads();  // K(nb) (and Q) landed; every warp is done reading V(nb+1)
    if (!first) {
      loadKV(sVa, vBase, p.vRowStride, (int64_t)hk * p.vHeadStride, p.dv, nb);
      cpAsyncCommit();
    }
    const uint32_t aBase = opaque(sQa + aOff), bBase = opaque(sKa + bOff);

    float s[C::kMT][C::kNT][4];
#pragma unroll
    for (int mt = 0; mt < C::kMT; ++mt)
#pragma unroll
      for (int nt = 0; nt < C::kNT; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[mt][nt][e] = 0.f;

#pragma unroll
    for (int kk = 0; kk < C::kD / 16; ++kk) {
      if (kFull || kk * 16 < p.d) {  // padded head dims skip the all-zero k slices
        uint32_t a[C::kMT][4];
#pragma unroll
        for (int mt = 0; mt < C::kMT; ++mt)
          ldsm4(a[mt], swz(aBase, 2 * kk) + mt * 16 * kRowBytes);
#pragma unroll
        for (int nn = 0; nn < C::kNT / 2; ++nn) {
          uint32_t b[4];
          ldsm4(b, swz(bBase, 2 * kk) + nn * 16 * kRowBytes);
#pragma unroll
          for (int mt = 0; mt < C::kMT; ++mt) {
            mma16816<T>(s[mt][2 * nn], a[mt], b[0], b[1]);
            mma16816<T>(s[mt][2 * nn + 1], a[mt], b[2], b[3]);
          }
        }
      }
    }

    // Scores to the log2 domain: scale (any sign), softcap, ALiBi, then the mask replaces
    // (never adds to) the score, so a NaN under the mask cannot leak into the row.
    const int n0 = nb * C::kBN;
    const int colBase = n0 + (lane & 3) * 2;
    if (kFull) {
      // scores stay unscaled: the scale is applied in the exponent below
    } else if (p.softcapInv != 0.f) {
#pragma unroll
      for (int mt = 0; mt < C::kMT; ++mt)
#pragma unroll
        for (int nt = 0; nt < C::kNT; ++nt)
#pragma unroll
          for (int e = 0; e < 4; ++e) s[mt][nt][e] = p.softcapLog2 * tanhf(s[mt][nt][e] * p.softcapInv);
    } else {
#pragma unroll
      for (int mt = 0; mt < C::kMT; ++mt)
#pragma unroll
        for (int nt = 0; nt < C::kNT; ++nt)
#pragma unroll
          for (int e = 0; e < 4; ++e) s[mt][nt][e] *= p.scaleLog2;
    }
    if (!kFull && p.alibiSlopes) {
      float slope[C::kMT][2];
#pragma unroll
      for (int mt = 0; mt < C::kMT; ++mt)
#pragma unroll
        for (int hr = 0; hr < 2; ++hr) {
          const int rr = myRow + mt * 16 + hr * 8, i = rr / G;
          slope[mt][hr] = __ldg(p.alibiSlopes + hk * G + (rr - i * G)) * kLog2e;
        }
#pragma unroll
      for (int mt = 0; mt < C::kMT; ++mt)
#pragma unroll
        for (int nt = 0; nt < C::kNT; ++nt)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int j = colBase + nt * 8 + (e & 1);
            s[mt][nt][e] -= slope[mt][e >> 1] * fabsf(float(diagOf(mt, e >> 1) - j));
          }
    }
    const bool needMask = n0 + C::kBN > lk || n0 + C::kBN - 1 > diagFirst + p.windowRight ||
                          n0 < diagLast - p.windowLeft;
    if (needMask) {
#pragma unroll
      for (int mt = 0; mt < C::kMT; ++mt)
#pragma unroll
        for (int hr = 0; hr < 2; ++hr) {
          const int diag = diagOf(mt, hr);
          const int jLo = diag - p.windowLeft;
          int jHi = diag + p.windowRight;
          jHi = jHi < lk - 1 ? jHi : lk - 1;
#pragma unroll
          for (int nt = 0; nt < C::kNT; ++nt)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
              const int j = colBase + nt * 8 + e;
              if (j < jLo || j > jHi) s[mt][nt][hr * 2 + e] = -INFINITY;
            }
        }
    }

    // Online softmax in the log2 domain: row max and sum are of s * sc (sc = 1 when the scores
    // are already scaled). A row that has seen only masked keys keeps max -inf; it is
    // exponentiated against 0 instead, so its probabilities are exactly 0 and never NaN.
    const float sc = kFull ? p.scaleLog2 : 1.f;
    float corr[C::kMT][2];
    // Reductions inside a row: pairwise trees where the tile has at most 8 n8 tiles of scores
    // (d128, d256, the 16-row tile: +1-2% on an H100, and the quad shuffles of all the thread's
    // rows are issued together); chains on the 128x128 d64 tile, where the tree's extra live
    // registers spilled and cost 2-3% (notes/cuda-kernel.md).
    constexpr bool kTree = C::kNT <= 8;
    float rowMx[C::kMT][2];  // kTree: the rows' maxima, reduced over the quad before the exponentials
    if constexpr (kTree) {
#pragma unroll
      for (int mt = 0; mt < C::kMT; ++mt)
#pragma unroll
        for (int hr = 0; hr < 2; ++hr) {
          float m[C::kNT];
#pragma unroll
          for (int nt = 0; nt < C::kNT; ++nt) m[nt] = fmaxf(s[mt][nt][hr * 2], s[mt][nt][hr * 2 + 1]);
          treeReduce<C::kNT / 2>(m, [](float x, float y) { return fmaxf(x, y); });
          rowMx[mt][hr] = m[0];
        }
#pragma unroll
      for (int sh = 1; sh <= 2; sh *= 2)
#pragma unroll
        for (int mt = 0; mt < C::kMT; ++mt)
#pragma unroll
          for (int hr = 0; hr < 2; ++hr) rowMx[mt][hr] = fmaxf(rowMx[mt][hr], __shfl_xor_sync(0xffffffffu, rowMx[mt][hr], sh));
    }
#pragma unroll
    for (int mt = 0; mt < C::kMT; ++mt)
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        float mx;
        if constexpr (kTree) {
          mx = rowMx[mt][hr];
        } else {
          mx = fmaxf(s[mt][0][hr * 2], s[mt][0][hr * 2 + 1]);
#pragma unroll
          for (int nt = 1; nt < C::kNT; ++nt) mx = fmaxf(mx, fmaxf(s[mt][nt][hr * 2], s[mt][nt][hr * 2 + 1]));
          mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
          mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        }
        mx = fmaxf(rowMax[mt][hr], mx * sc);
        const float mUse = mx == -INFINITY ? 0.f : mx;
        corr[mt][hr] = ex2(rowMax[mt][hr] - mUse);
        rowMax[mt][hr] = mx;
        float sum[C::kNT];
        float acc = rowSum[mt][hr] * corr[mt][hr];
#pragma unroll
        for (int nt = 0; nt < C::kNT; ++nt) {
          const float p0 = ex2(fmaf(s[mt][nt][hr * 2], sc, -mUse)), p1 = ex2(fmaf(s[mt][nt][hr * 2 + 1], sc, -mUse));
          s[mt][nt][hr * 2] = p0;
          s[mt][nt][hr * 2 + 1] = p1;
          if constexpr (kTree) sum[nt] = p0 + p1; else acc += p0 + p1;
        }
        if constexpr (kTree) {
          treeReduce<C::kNT / 2>(sum, [](float x, float y) { return x + y; });
          acc = fmaf(rowSum[mt][hr], corr[mt][hr], sum[0]);
        }
        rowSum[mt][hr] = acc;  // this thread's partial; the quad is reduced once, at the end
      }
    if (!first) {  // O is still 0 after the first tile: nothing to rescale
#pragma unroll
      for (int mt = 0; mt < C::kMT; ++mt)
#pragma unroll
        for (int dt = 0; dt < C::kOT; ++dt)
#pragma unroll
          for (int e = 0; e < 4; ++e) o[mt][dt][e] *= corr[mt][e >> 1];
    }

    // P to the A operand layout now: half the registers of the float scores during P V.
    uint32_t pk[C::kMT][C::kBN / 16][4];
#pragma unroll
    for (int mt = 0; mt < C::kMT; ++mt)
#pragma unroll
      for (int kk = 0; kk < C::kBN / 16; ++kk) {
        pk[mt][kk][0] = pack2<T>(s[mt][2 * kk][0], s[mt][2 * kk][1]);
        pk[mt][kk][1] = pack2<T>(s[mt][2 * kk][2], s[mt][2 * kk][3]);
        pk[mt][kk][2] = pack2<T>(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
        pk[mt][kk][3] = pack2<T>(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
      }

    cpAsyncWait<0>();
    __syncthreads();  // V(nb) landed; every warp is done reading K(nb)
    if (nb > nLo) loadKV(sKa, kBase, p.kRowStride, (int64_t)hk * p.kHeadStride, p.d, nb - 1);
    cpAsyncCommit();
    const uint32_t vBase = opaque(sVa + vOff);

#pragma unroll
    for (int kk = 0; kk < C::kBN / 16; ++kk) {
#pragma unroll
      for (int dn = 0; dn < C::kD / 16; ++dn) {
        if (kFull || dn * 16 < p.dv) {
          uint32_t b[4];
          ldsm4t(b, swz(vBase, 2 * dn) + kk * 16 * kRowBytes);
#pragma unroll
          for (int mt = 0; mt < C::kMT; ++mt) {
            mma16816<T>(o[mt][2 * dn], pk[mt][kk], b[0], b[1]);
            mma16816<T>(o[mt][2 * dn + 1], pk[mt][kk], b[2], b[3]);
          }
        }
      }
    }
  }

  // Epilogue. sum == 0 means the row saw no key: out 0, lse -inf. A NaN sum propagates.
  // Output stores: by default each thread stores its 4-byte pairs straight from registers. With
  // p.stagedOut (a tuning knob) each warp stages its rows of O in its own rows of the Q tile (no
  // other warp reads them) and stores whole 16-byte chunks instead; on an H100 that measured
  // 1-4% slower (the extra shared-memory round trip outweighs the wider stores).
  const int H = p.numHeads;
  const bool direct = p.numSplits == 1, staged = direct && p.stagedOut;
  if (staged) __syncwarp();  // every lane's last ldmatrix of Q is done before Q is overwritten
#pragma unroll
  for (int mt = 0; mt < C::kMT; ++mt)
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      float sum = rowSum[mt][hr];
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      sum += __shfl_xor_sync(0xffffffffu, sum, 2);
      const int lr = warpRow + mt * 16 + hr * 8 + (lane >> 2);  // row in the block
      const int rr = m0 + lr;
      const bool empty = sum == 0.f;
      const float inv = empty ? 0.f : 1.f / sum;
      if (staged) {
        const uint32_t rowAddr = sQa + lr * kRowBytes + ((lane & 3) << 2);
#pragma unroll
        for (int dt = 0; dt < C::kOT; ++dt)
          if (kFull || dt * 8 < p.dv)
            stShared32(swz(rowAddr ^ ((lr & 7) << 4), dt),
                       empty ? 0u : pack2<T>(o[mt][dt][hr * 2] * inv, o[mt][dt][hr * 2 + 1] * inv));
      }
      if (rr >= rowsTotal) continue;
      const int i = rr / G, h = hk * G + (rr - i * G);
      const float mUse = rowMax[mt][hr] == -INFINITY ? 0.f : rowMax[mt][hr];
      const float lse = empty ? -INFINITY : (mUse + log2f(sum)) * kLn2;
      const int64_t row = (int64_t)(qStart + i) * H + h;
      if (!direct) {
        const int64_t rows = (int64_t)p.totalQ * H;
        float* dst = p.oAccum + ((int64_t)w.split * rows + row) * p.dv + (lane & 3) * 2;
#pragma unroll
        for (int dt = 0; dt < C::kOT; ++dt)
          if (kFull || dt * 8 < p.dv)
            *reinterpret_cast<float2*>(dst + dt * 8) =
                empty ? make_float2(0.f, 0.f) : make_float2(o[mt][dt][hr * 2] * inv, o[mt][dt][hr * 2 + 1] * inv);
        if ((lane & 3) == 0) p.lseAccum[(int64_t)w.split * rows + row] = lse;
      } else {
        if (!staged) {
          T* dst = static_cast<T*>(p.out) + (int64_t)(qStart + i) * p.oRowStride + (int64_t)h * p.oHeadStride + (lane & 3) * 2;
#pragma unroll
          for (int dt = 0; dt < C::kOT; ++dt)
            if (kFull || dt * 8 < p.dv)
              *reinterpret_cast<uint32_t*>(dst + dt * 8) =
                  empty ? 0u : pack2<T>(o[mt][dt][hr * 2] * inv, o[mt][dt][hr * 2 + 1] * inv);
        }
        if (p.lse && (lane & 3) == 0) {
          const int64_t at = p.lseFixedS > 0 ? (int64_t)(w.b * H + h) * p.lseFixedS + i : (int64_t)h * p.totalQ + qStart + i;
          p.lse[at] = lse;
        }
      }
    }
  if (staged) {
    __syncwarp();
    constexpr int kWarpChunks = C::kMT * 16 * C::kChunks;  // 16-byte chunks in a warp's rows
#pragma unroll
    for (int k = 0; k < kWarpChunks / 32; ++k) {
      const int idx = k * 32 + lane, lr = warpRow + idx / C::kChunks, c = idx % C::kChunks;
      const int rr = m0 + lr;
      if (rr < rowsTotal && (kFull || c * 8 < p.dv)) {
        const uint4 val = ldShared128(sQa + lr * kRowBytes + ((c ^ (lr & 7)) << 4));
        const int i = G == 1 ? rr : rr / G, h = hk * G + (rr - i * G);
        T* dst = static_cast<T*>(p.out) + (int64_t)(qStart + i) * p.oRowStride + (int64_t)h * p.oHeadStride + c * 8;
        *reinterpret_cast<uint4*>(dst) = val;
      }
    }
  }
}

// Whether a call can take the fast copy (kFull) of the loop.
FA_HD bool fullPath(const FwdParams& p, int headDimClass) {
  return p.d == headDimClass && p.dv == headDimClass && p.softcapInv == 0.f && !p.alibiSlopes && p.scaleLog2 > 0.f;
}

// The two copies are two kernels, not two branches of one: in one function ptxas allocates
// registers for both at once and the d64 128x128 tile spilled 108-140 bytes; apart, neither
// copy of any tile spills.
template <class C, typename T, bool kFull>
__global__ void __launch_bounds__(C::kThreads, C::kMinBlocks) fwdKernel(const __grid_constant__ FwdParams p) {
  extern __shared__ __align__(1024) unsigned char smem[];
  fwdBody<C, T, kFull>(p, smem);
}

}  // namespace fa
