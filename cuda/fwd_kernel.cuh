// FlashAttention-2 forward, one template for every head-dim class, dtype and tile.
//
// A block owns one work item: (sequence b, kv head hk, block of query rows, key split). Its rows are
// (query row, head of the group) pairs, row r = i * group + g, so grouped heads that share
// K/V are computed together and K/V tiles are read once per group. Each warp owns kMT m16
// tiles of rows; S = Q K^T and O += P V run on mma.sync m16n8k16 with float32 accumulators,
// operands fed by ldmatrix from XOR-swizzled shared memory (16-byte chunk c of row r is stored
// at chunk c ^ (r & 7): the 8 row addresses of every ldmatrix phase hit 8 different bank
// quads, and so do the cp.async writes). P never leaves registers: the S accumulator layout of
// two n8 tiles is exactly the A operand layout of the next mma.
//
// Pipeline: the tiles K(j), V(j), K(j-1), V(j-1), ... go through a ring of C::kStages buffers. With
// 2 (FlashAttention-2's): K(j) is in smem when iteration j starts; V(j) is fetched with cp.async
// while S(j) is computed, and K(j-1) while P V(j) is computed, so every load has a full matrix
// product to land in. With 4 (the small tile), three tiles are in flight while one is used. Key
// tiles run from the last to the first, so the tiles that need masking (diagonal / sequence end)
// come first and the rest skip the mask entirely.
//
// C::kPlanes == 2: float32 inputs as float16 pairs (split.cuh). Every operand tile has a high plane and,
// right after it in shared memory, a low plane; each product is three (hi.hi + hi.lo + lo.hi), and the
// output is float32.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cstdint>
#include <type_traits>

#include "fwd_rows.cuh"
#include "launch.h"
#include "params.h"
#include "ptx.h"
#include "split.cuh"
#include "tile.h"

namespace fa {

// kFull: the fast copy of the loop, for the common call: the head dims fill the class
// (d == dv == kD, so the k-slice loops need no guards and the compiler can software-pipeline
// ldmatrix across them), no softcap, no ALiBi and a positive scale. Its scores stay unscaled
// until the exponent, exp2(s * scale - max * scale), one FFMA per score as in FlashAttention-2
// (a positive scale keeps the max where it is). Every other call takes the general copy.
// kPaged: keys are read through the block table (params.h keyRow), one table entry per key row a
// thread loads; the flat copy steps one pointer.
template <class C, typename T, bool kFull, bool kPaged>
__device__ __forceinline__ void fwdBody(const FwdParams& p, unsigned char* smem) {
  constexpr bool kSplit = C::kPlanes == 2;
  using TO = typename std::conditional<kSplit, float, T>::type;  // the output's element type
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const WorkItem w = kPaged ? workItem(p, blockIdx.x) : p.work[blockIdx.x];  // (params.h)
  const int hk = w.hk;
  const int qStart = w.qStart, lq = w.lq, kStart = w.kStart, lk = w.lk;
  const int G = p.group;
  const int m0 = w.mBlock * C::kBM;
  const ItemSpan span(p, w, C::kBM, C::kBN);
  const int nLo = span.nLo, nHi = span.nHi, rowsTotal = span.rowsTotal;

  const T* qBase = static_cast<const T*>(p.q);
  const T* kBase = static_cast<const T*>(p.k);
  const T* vBase = static_cast<const T*>(p.v);
  constexpr int kRowBytes = C::kD * 2;
  const uint32_t sQa = smemAddr(smem);
  // Ring buffer s at sKa + s * kTileBytes; tile t (K of key tile nHi - 1 - t / 2 when t is even, else
  // its V) is in buffer t % kStages. With 2 buffers K is always in 0 and V in 1.
  constexpr int kR = C::kStages;
  constexpr uint32_t kQLo = C::kBM * kRowBytes, kKvLo = C::kBN * kRowBytes;  // a low plane after its high one
  constexpr uint32_t kTileBytes = C::kPlanes * kKvLo;
  const uint32_t sKa = sQa + C::kPlanes * kQLo;
  auto stageOf = [&](int t) { return sKa + uint32_t(kR == 2 ? (t & 1) : (t & (kR - 1))) * kTileBytes; };

  // Loads: thread tid moves chunks cl, cl + kCL, ... of rows rowOff, rowOff + kRowsPerPass, ...
  // (rows kRowsPerPass apart share row & 7, so one base serves them all).
  const int cl = tid % C::kCL, rowOff = tid / C::kCL;
  const uint32_t stBase = rowOff * kRowBytes + ((cl ^ (rowOff & 7)) << 4);
  // Address of chunk cl + kCL * j of row rowOff + pass * kRowsPerPass.
  auto stAddr = [&](uint32_t tileBase, int pass, int j) {
    const uint32_t b = tileBase + stBase + pass * C::kRowsPerPass * kRowBytes;
    return C::kCL >= 8 ? b + C::kCL * j * 16 : swz(b, C::kCL * j);
  };

  auto loadKV = [&](uint32_t tileBase, const T* base, int64_t rowStride, int64_t headOff, int dValid, int nb,
                    int64_t plane) {
    tileBase = opaque(tileBase);
    const int n0 = nb * C::kBN;
    const T* src = base + (int64_t)(kStart + n0 + rowOff) * rowStride + headOff + cl * 8;
    const int64_t step = C::kRowsPerPass * rowStride;
#pragma unroll
    for (int pass = 0; pass < C::kBN / C::kRowsPerPass; ++pass, src += step) {
      // Rows past the sequence are zero-filled: never read another sequence's keys.
      const int key = n0 + rowOff + pass * C::kRowsPerPass;
      const bool rowOk = key < lk;
      if constexpr (kPaged) {  // two spellings: the flat copy compiles as it did before (fwd_wgmma.cuh)
        const T* row = base + keyRow<true>(p, w, rowOk ? key : 0) * rowStride + headOff + cl * 8;
#pragma unroll
        for (int j = 0; j < C::kChunks / C::kCL; ++j) {
          const bool ok = rowOk && (kFull || (cl + C::kCL * j) * 8 < dValid);
          cpAsync16(stAddr(tileBase, pass, j), ok ? row + C::kCL * j * 8 : base, ok);
          if constexpr (kSplit)
            cpAsync16(stAddr(tileBase, pass, j) + kKvLo, ok ? row + C::kCL * j * 8 + plane : base, ok);
        }
      } else {
#pragma unroll
        for (int j = 0; j < C::kChunks / C::kCL; ++j) {
          const bool ok = rowOk && (kFull || (cl + C::kCL * j) * 8 < dValid);
          cpAsync16(stAddr(tileBase, pass, j), ok ? src + C::kCL * j * 8 : base, ok);
          if constexpr (kSplit)
            cpAsync16(stAddr(tileBase, pass, j) + kKvLo, ok ? src + C::kCL * j * 8 + plane : base, ok);
        }
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
        if constexpr (kSplit) cpAsync16(stAddr(sQa, pass, j) + kQLo, ok ? src + C::kCL * j * 8 + p.qPlane : qBase, ok);
      }
    }
    // Every buffer is free: tiles 0 .. kStages - 1, one group each (Q with K of the first). The first
    // iteration waits for Q + K only, so V's latency overlaps Q + K's instead of following it.
#pragma unroll
    for (int t = 0; t < kR; ++t) {
      const int nb = nHi - 1 - t / 2;
      if (t < 2 || nb >= nLo) {
        if (t & 1)
          loadKV(stageOf(t), vBase, p.vRowStride, (int64_t)hk * p.vHeadStride, p.dv, nb, p.vPlane);
        else
          loadKV(stageOf(t), kBase, p.kRowStride, (int64_t)hk * p.kHeadStride, p.d, nb, p.kPlane);
      }
      cpAsyncCommit();
    }
  }

  // This thread's accumulator rows: m tile mt, half hr holds local row warpRow + mt*16 + lane/4 + hr*8.
  const int warpRow = warp * 16 * C::kMT;
  const int myRow = m0 + warpRow + (lane >> 2);  // + mt * 16 + hr * 8
  const RowFrame frame{myRow, G, lq, lk};
  float slope[C::kMT][2];  // ALiBi (fwd_rows.cuh); the fast copy has none
  if constexpr (!kFull) alibiRows(p, frame, hk, slope);

  // ldmatrix row addresses. Each 8-lane phase reads 8 consecutive rows, so row & 7 == lane & 7
  // and logical chunk 2*kk + c sits at (2*kk) ^ (c ^ (lane & 7)): base carries c ^ (lane & 7).
  const uint32_t aOff = (warpRow + (lane & 15)) * kRowBytes + (((lane >> 4) ^ (lane & 7)) << 4);
  const uint32_t bOff = ((lane & 7) + ((lane >> 4) << 3)) * kRowBytes + ((((lane >> 3) & 1) ^ (lane & 7)) << 4);
  const uint32_t vOff = ((lane & 7) + ((lane >> 3) & 1) * 8) * kRowBytes + (((lane >> 4) ^ (lane & 7)) << 4);

  SplitFactors factor{1.f, 1.f};  // (split.cuh) the planes' scales, undone in the scores and the output
  if constexpr (kSplit) factor = splitFactors(p.splitMax);

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

  // Each half-step waits for its tile, then refills the buffer the previous half-step used with the
  // tile kStages - 1 ahead (a V tile from a K step, a K tile from a V step: the ring is even).
  for (int nb = nHi - 1, t = 0; nb >= nLo; --nb, t += (kR == 2 ? 0 : 2)) {  // (t stays 0 for a pair)
    const bool first = nb == nHi - 1;
    if (first)
      cpAsyncWait<kR - 1>();  // Q + K(nb) landed; the other prologue tiles may still be in flight
    else
      cpAsyncWait<kR - 2>();
    __syncthreads();  // K(nb) (and Q) landed; every warp is done reading tile t - 1
    if (!first) {
      const int nbV = nb - (kR - 2) / 2;  // tile t + kR - 1
      if (kR == 2 || nbV >= nLo)
        loadKV(stageOf(t + kR - 1), vBase, p.vRowStride, (int64_t)hk * p.vHeadStride, p.dv, nbV, p.vPlane);
      cpAsyncCommit();
    }
    const uint32_t aBase = opaque(sQa + aOff), bBase = opaque(stageOf(t) + bOff);

    // The tensor cores accumulate with truncation, relative to the largest term: a split call keeps the
    // small products (hi.lo, lo.hi) in an accumulator of their own, added to hi.hi once in float32.
    float s[C::kMT][C::kNT][4], sLo[C::kMT][C::kNT][4];
#pragma unroll
    for (int mt = 0; mt < C::kMT; ++mt)
#pragma unroll
      for (int nt = 0; nt < C::kNT; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[mt][nt][e] = sLo[mt][nt][e] = 0.f;

#pragma unroll
    for (int kk = 0; kk < C::kD / 16; ++kk) {
      if (kFull || kk * 16 < p.d) {  // padded head dims skip the all-zero k slices
        uint32_t a[C::kMT][4], aLo[C::kMT][4];
#pragma unroll
        for (int mt = 0; mt < C::kMT; ++mt) {
          ldsm4(a[mt], swz(aBase, 2 * kk) + mt * 16 * kRowBytes);
          if constexpr (kSplit) ldsm4(aLo[mt], swz(aBase, 2 * kk) + mt * 16 * kRowBytes + kQLo);
        }
#pragma unroll
        for (int nn = 0; nn < C::kNT / 2; ++nn) {
          uint32_t b[4], bLo[4];
          ldsm4(b, swz(bBase, 2 * kk) + nn * 16 * kRowBytes);
          if constexpr (kSplit) ldsm4(bLo, swz(bBase, 2 * kk) + nn * 16 * kRowBytes + kKvLo);
#pragma unroll
          for (int mt = 0; mt < C::kMT; ++mt) {
            mma16816<T>(s[mt][2 * nn], a[mt], b[0], b[1]);
            mma16816<T>(s[mt][2 * nn + 1], a[mt], b[2], b[3]);
            if constexpr (kSplit) {
              mma16816<T>(sLo[mt][2 * nn], a[mt], bLo[0], bLo[1]);
              mma16816<T>(sLo[mt][2 * nn + 1], a[mt], bLo[2], bLo[3]);
              mma16816<T>(sLo[mt][2 * nn], aLo[mt], b[0], b[1]);
              mma16816<T>(sLo[mt][2 * nn + 1], aLo[mt], b[2], b[3]);
            }
          }
        }
      }
    }

    const int n0 = nb * C::kBN;
    const int colBase = n0 + (lane & 3) * 2;
    if constexpr (kSplit)  // (the fast copy takes the planes' factor in the exponent's scale)
      eachFrag<C::kMT, C::kNT>([&](int mt, int nt, int e) {
        const float x = s[mt][nt][e] + sLo[mt][nt][e];
        s[mt][nt][e] = kFull ? x : x * factor.score;
      });
    transformScores<C::kMT, C::kNT, kFull>(p, s, frame, colBase, span.needsMask(p, n0, C::kBN, lk), slope);

    float corr[C::kMT][2];
    onlineSoftmax<C::kMT, C::kNT, (C::kNT <= 8)>(s, rowMax, rowSum, kFull ? p.scaleLog2 * factor.score : 1.f, corr);
    // O is still 0 after the first tile: nothing to rescale. A split call sums the tile's P V in an
    // accumulator of its own (the truncation then is relative to one tile's share, not to all of O) and
    // folds it in below, O = O * corr + PV, in float32.
    if (!kSplit && !first) rescaleO(o, corr);
    float pv[C::kMT][C::kOT][4];
    float(&acc)[C::kMT][C::kOT][4] = kSplit ? pv : o;
    if constexpr (kSplit) eachFrag<C::kMT, C::kOT>([&](int mt, int dt, int e) { pv[mt][dt][e] = 0.f; });
    uint32_t pk[C::kMT][C::kBN / 16][4], pkLo[C::kMT][C::kBN / 16][4];
    if constexpr (kSplit)
      packPSplit(s, pk, pkLo);
    else
      packP<T>(s, pk);

    cpAsyncWait<kR - 2>();
    __syncthreads();                              // V(nb) landed; every warp is done reading K(nb)
    if (kR == 2 ? nb > nLo : nb - kR / 2 >= nLo)  // tile t + kR
      loadKV(stageOf(t + kR), kBase, p.kRowStride, (int64_t)hk * p.kHeadStride, p.d, nb - kR / 2, p.kPlane);
    cpAsyncCommit();
    const uint32_t vBase = opaque(stageOf(t + 1) + vOff);

#pragma unroll
    for (int kk = 0; kk < C::kBN / 16; ++kk) {
#pragma unroll
      for (int dn = 0; dn < C::kD / 16; ++dn) {
        if (kFull || dn * 16 < p.dv) {
          uint32_t b[4], bLo[4];
          ldsm4t(b, swz(vBase, 2 * dn) + kk * 16 * kRowBytes);
          if constexpr (kSplit) ldsm4t(bLo, swz(vBase, 2 * dn) + kk * 16 * kRowBytes + kKvLo);
#pragma unroll
          for (int mt = 0; mt < C::kMT; ++mt) {
            mma16816<T>(acc[mt][2 * dn], pk[mt][kk], b[0], b[1]);
            mma16816<T>(acc[mt][2 * dn + 1], pk[mt][kk], b[2], b[3]);
            if constexpr (kSplit) {
              mma16816<T>(acc[mt][2 * dn], pk[mt][kk], bLo[0], bLo[1]);
              mma16816<T>(acc[mt][2 * dn + 1], pk[mt][kk], bLo[2], bLo[3]);
              mma16816<T>(acc[mt][2 * dn], pkLo[mt][kk], b[0], b[1]);
              mma16816<T>(acc[mt][2 * dn + 1], pkLo[mt][kk], b[2], b[3]);
            }
          }
        }
      }
    }
    if constexpr (kSplit)
      eachFrag<C::kMT, C::kOT>([&](int mt, int dt, int e) {
        o[mt][dt][e] = first ? pv[mt][dt][e] : fmaf(o[mt][dt][e], corr[mt][e >> 1], pv[mt][dt][e]);
      });
  }

  // Epilogue (fwd_rows.cuh): each thread stores its 4-byte pairs straight from registers (staging O
  // through shared memory for 16-byte stores measured 1-4% slower on an H100, notes/cuda-kernel.md).
  if constexpr (kSplit) eachFrag<C::kMT, C::kOT>([&](int mt, int dt, int e) { o[mt][dt][e] *= factor.out; });
  storeRows<TO, C::kMT, C::kOT, kFull>(p, w, o, rowMax, rowSum, m0, warpRow, lane, rowsTotal);
}

// The two copies are two kernels, not two branches of one: in one function ptxas allocates
// registers for both at once and the d64 128x128 tile spilled 108-140 bytes; apart, only that
// tile's general copy spills, 8 bytes for sm_90 and 32 for sm_80 (ptxas -v, nvcc 13.0).
template <class C, typename T, bool kFull, bool kPaged>
__global__ void __launch_bounds__(C::kThreads, C::kMinBlocks) fwdKernel(const __grid_constant__ FwdParams p) {
  extern __shared__ __align__(1024) unsigned char smem[];
  waitPriorGrid();  // (launch.h) the previous kernel's writes, before any read
  allowNextGrid();
  fwdBody<C, T, kFull, kPaged>(p, smem);
}

}  // namespace fa
