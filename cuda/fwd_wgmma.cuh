// The Hopper (sm_90a) copy of the forward pass: the same algorithm as fwd_kernel.cuh with its
// two matrix products on wgmma, the warpgroup-wide asynchronous MMA of sm_90a (on an H100 this
// kernel measured 1.00-1.30x the mma.sync one's speed, notes/cuda-kernel.md). It serves the fast
// 128-row tiles of head-dim classes 64 and 128, the fast path (kFull: d == dv == the class, no softcap,
// no ALiBi, positive scale) and the general one (padded head dims, Dv != D, softcap, ALiBi, any scale);
// the 16-row tile, d256 and every GPU that is not compute capability 9.0 take fwd_kernel.cuh.
//
// A block is kWG warpgroups and one work item of 64 kWG (query row, head) rows; each
// warpgroup owns 64 rows, each of its warps 16, so the accumulators have exactly the m16n8
// layout of the mma.sync kernel (kMT = 1) and share its row code (fwd_rows.cuh). Per key tile
// of kBN: S = Q K^T (wgmma, Q and K from shared memory), mask and online softmax in registers,
// O += P V (wgmma, P from registers, V from shared memory read N-major), the softmax of one tile
// overlapping the previous tile's P V (FlashAttention-3's intra-warpgroup overlap).
//
// Shared memory holds Q, two K buffers and two V buffers, each as [d / 64][rows][64] with the 128-byte
// swizzle wgmma reads (16-byte chunk c of row r at c ^ (r & 7)); 1024-byte aligned atoms. The
// loads are cp.async, K two tiles ahead and V one (see the loop). cp.async writes
// through the generic proxy and wgmma reads through the async proxy: every thread fences the
// proxies before the barrier that publishes a tile.
//
// kPlanes == 2: float32 as float16 pairs (split.cuh), as in fwd_kernel.cuh: each operand's low plane
// follows its high one in shared memory; S is the two small products and then hi.hi in one accumulator
// (the small ones first, while it is small: the tensor cores truncate relative to the largest term),
// and each tile's P V sums into a register tile of its own, folded into O in float32.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cstdint>
#include <type_traits>

#include "launch.h"
#include "fwd_rows.cuh"
#include "params.h"
#include "ptx.h"
#include "split.cuh"
#include "tile.h"
#include "wgmma_ops.h"

namespace fa {

// kWG warpgroups of 64 rows each, kBN keys per tile, kMinBlocks blocks per SM (the register cap).
// Planes_ 2: float32 as float16 pairs (split.cuh).
template <int D_, int WG_, int BN_, int MinBlocks_, int Planes_ = 1>
struct WgTile {
  static constexpr int kD = D_, kWG = WG_, kBM = 64 * WG_, kBN = BN_, kThreads = 128 * WG_, kMinBlocks = MinBlocks_;
  static constexpr int kRowsPerPass = kThreads / 8;                 // loads: 8 threads per 128-byte row
  static constexpr int kNT = kBN / 8, kOT = D_ / 8, kDB = D_ / 64;  // n8 tiles of S and O; 64-wide d blocks
  static constexpr int kPlanes = Planes_;
  static constexpr int kQPlane = kBM * D_ * 2, kTilePlane = kBN * D_ * 2;  // a low plane after its high one
  static constexpr int kQBytes = Planes_ * kQPlane, kTileBytes = Planes_ * kTilePlane;
  static constexpr int kSmemBytes = kQBytes + 4 * kTileBytes;  // Q, K buffers 0 and 1, V buffers 0 and 1
  static_assert(D_ == 64 || D_ == 128, "wgmma tiles for head dims 64 and 128");
  static_assert(kRowsPerPass % 8 == 0, "a thread's rows share row & 7");
  static_assert(kBM % kRowsPerPass == 0 && kBN % kRowsPerPass == 0, "loads tile evenly");
};

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define FA_WGMMA_DEVICE 1
#endif

#ifdef FA_WGMMA_DEVICE
__device__ __forceinline__ void wgFence() {
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void wgCommit() {
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
template <int N>
__device__ __forceinline__ void wgWait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
__device__ __forceinline__ void fenceProxyAsync() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}
// Pins registers the tensor cores write asynchronously to this point of the program, so the
// compiler neither reads them before the wait nor moves writes of them past the issue.
template <int N>
__device__ __forceinline__ void pinRegs(float (&r)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(r[i])::"memory");
}

// Shared-memory matrix descriptor with the 128-byte swizzle: start address, leading byte offset
// (between 64-wide blocks along N for N-major operands; unused for K-major) and stride byte
// offset (between groups of 8 rows: 1024 bytes), all in 16-byte units.
__device__ __forceinline__ uint64_t smemDesc(uint32_t addr, uint32_t lbo) {
  return uint64_t((addr & 0x3FFFF) >> 4) | (uint64_t(lbo >> 4) << 16) | (uint64_t(1024 >> 4) << 32) | (1ull << 62);
}

// kFull: the fast path (d == dv == the class, no softcap, no ALiBi, positive scale; scores scaled in
// the exponent). Without it, as fwd_kernel.cuh's general copy: the scores are scaled (any sign),
// softcapped and biased before the softmax (transformScores), columns past d and dv load as zeros
// and are not stored. kPaged: keys through the block table (params.h keyRow), as in fwd_kernel.cuh.
template <class C, typename T, bool kFull, bool kPaged>
__device__ __forceinline__ void fwdBodyWg(const FwdParams& p, unsigned char* smem) {
  constexpr bool kSplit = C::kPlanes == 2;
  using TO = typename std::conditional<kSplit, float, T>::type;  // the output's element type
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, wg = warp >> 2;
  const WorkItem w = kPaged ? workItem(p, blockIdx.x) : p.work[blockIdx.x];  // (params.h)
  const int hk = w.hk, qStart = w.qStart, lq = w.lq, kStart = w.kStart, lk = w.lk, G = p.group;
  const int m0 = w.mBlock * C::kBM;
  const ItemSpan span(p, w, C::kBM, C::kBN);
  const int nLo = span.nLo, nHi = span.nHi, rowsTotal = span.rowsTotal;

  const T* qBase = static_cast<const T*>(p.q);
  const T* kBase = static_cast<const T*>(p.k);
  const T* vBase = static_cast<const T*>(p.v);
  const uint32_t sQ = smemAddr(smem);
  // Key tile t (nb = nHi - 1 - t) lives in K buffer t & 1 and V buffer t & 1.
  auto kBuf = [&](int t) { return sQ + C::kQBytes + (t & 1) * C::kTileBytes; };
  auto vBuf = [&](int t) { return sQ + C::kQBytes + (2 + (t & 1)) * C::kTileBytes; };

  // Loads: thread tid moves chunk cl (of 8 in a 64-wide block) of rows rowOff, rowOff + kRowsPerPass,
  // ...; those rows share row & 7, so one swizzled offset serves them all.
  const int cl = tid & 7, rowOff = tid >> 3;
  const uint32_t stOff = rowOff * 128 + ((cl ^ (rowOff & 7)) << 4);
  // Column chunk db * 64 + cl * 8 of a row holds data where it is below the padded head dim dValid.
  auto colOk = [&](int db, int dValid) { return kFull || db * 64 + cl * 8 < dValid; };
  auto loadTile = [&](uint32_t dst, const T* base, int64_t rowStride, int64_t headOff, int nb, int64_t plane,
                      int dValid) {
    const int n0 = nb * C::kBN;
    const T* src = base + (int64_t)(kStart + n0 + rowOff) * rowStride + headOff + cl * 8;
    constexpr int kR = C::kRowsPerPass;
#pragma unroll
    for (int pass = 0; pass < C::kBN / kR; ++pass) {
      const int key = n0 + rowOff + pass * kR;
      const bool ok = key < lk;  // rows past the sequence are zero-filled
      // Two spellings, so the flat copy compiles exactly as before the paged one existed (selects,
      // no branches; a shared `row` pointer made ptxas branch and cost ~11% on an H200).
      if constexpr (kPaged) {
        const T* row = base + keyRow<true>(p, w, ok ? key : 0) * rowStride + headOff + cl * 8;
#pragma unroll
        for (int db = 0; db < C::kDB; ++db) {
          const bool in = ok && colOk(db, dValid);
          cpAsync16(dst + db * C::kBN * 128 + pass * kR * 128 + stOff, in ? row + db * 64 : base, in);
        }
      } else {
#pragma unroll
        for (int db = 0; db < C::kDB; ++db) {
          const bool in = ok && colOk(db, dValid);
          cpAsync16(dst + db * C::kBN * 128 + pass * kR * 128 + stOff,
                    in ? src + pass * kR * rowStride + db * 64 : base, in);
          if constexpr (kSplit)
            cpAsync16(dst + C::kTilePlane + db * C::kBN * 128 + pass * kR * 128 + stOff,
                      in ? src + pass * kR * rowStride + db * 64 + plane : base, in);
        }
      }
    }
  };
  const int numTiles = nHi - nLo;
  auto loadK = [&](int t) {
    loadTile(kBuf(t), kBase, p.kRowStride, (int64_t)hk * p.kHeadStride, nHi - 1 - t, p.kPlane, p.d);
  };
  auto loadV = [&](int t) {
    loadTile(vBuf(t), vBase, p.vRowStride, (int64_t)hk * p.vHeadStride, nHi - 1 - t, p.vPlane, p.dv);
  };

  // Prologue: Q and K(0) in the first group, V(0) and K(1) in the second.
  if (numTiles > 0) {
#pragma unroll
    for (int pass = 0; pass < C::kBM / C::kRowsPerPass; ++pass) {
      const int rr = m0 + rowOff + pass * C::kRowsPerPass, i = rr / G, g = rr - i * G;
      const bool ok = rr < rowsTotal;
      const T* src = qBase + (int64_t)(qStart + i) * p.qRowStride + (int64_t)(hk * G + g) * p.qHeadStride + cl * 8;
#pragma unroll
      for (int db = 0; db < C::kDB; ++db) {
        const bool in = ok && colOk(db, p.d);
        cpAsync16(sQ + db * C::kBM * 128 + pass * C::kRowsPerPass * 128 + stOff, in ? src + db * 64 : qBase, in);
        if constexpr (kSplit)
          cpAsync16(sQ + C::kQPlane + db * C::kBM * 128 + pass * C::kRowsPerPass * 128 + stOff,
                    in ? src + db * 64 + p.qPlane : qBase, in);
      }
    }
    loadK(0);
    cpAsyncCommit();
    loadV(0);
    if (numTiles > 1) loadK(1);
    cpAsyncCommit();
    cpAsyncWait<1>();
    fenceProxyAsync();
    __syncthreads();
  }

  const int warpRow = warp * 16;  // warpgroup wg's warps own rows 64 wg .. 64 wg + 63
  const RowFrame frame{m0 + warpRow + (lane >> 2), G, lq, lk};
  float slope[1][2];  // ALiBi (fwd_rows.cuh); the fast copy has none
  if constexpr (!kFull) alibiRows(p, frame, hk, slope);
  float o[1][C::kOT][4];
  float rowMax[1][2] = {{-INFINITY, -INFINITY}}, rowSum[1][2] = {{0.f, 0.f}};
#pragma unroll
  for (int dt = 0; dt < C::kOT; ++dt)
#pragma unroll
    for (int e = 0; e < 4; ++e) o[0][dt][e] = 0.f;
  float(&oFlat)[C::kOT * 4] = reinterpret_cast<float(&)[C::kOT * 4]>(o);
  float pv[C::kOT * 4];  // a split call's P V of one tile (unused otherwise)
  float(&acc)[C::kOT * 4] = kSplit ? pv : oFlat;
  uint32_t pk[1][C::kNT / 2][4], pkLo[1][C::kNT / 2][4];
  const uint32_t qAddr = sQ + wg * 64 * 128;
  SplitFactors factor{1.f, 1.f};  // (split.cuh) the planes' scales, undone in the scores and the output
  if constexpr (kSplit) factor = splitFactors(p.splitMax);

  // O += P(t) V(t): kBN keys in k16 steps; V is read N-major (its rows are keys, the head dim
  // runs along them), its 64-wide d blocks kBN * 128 bytes apart.
  auto issuePV = [&](int t) {
    if constexpr (kSplit) {
#pragma unroll
      for (int i = 0; i < C::kOT * 4; ++i) acc[i] = 0.f;
    }
    wgFence();               // O was rescaled and P written by ordinary instructions
    if constexpr (kSplit) {  // the small products first
#pragma unroll
      for (int kk = 0; kk < C::kBN / 16; ++kk) {
        wgmmaRS<T, C::kD>(acc, pk[0][kk], smemDesc(vBuf(t) + C::kTilePlane + kk * 16 * 128, C::kBN * 128));
        wgmmaRS<T, C::kD>(acc, pkLo[0][kk], smemDesc(vBuf(t) + kk * 16 * 128, C::kBN * 128));
      }
    }
#pragma unroll
    for (int kk = 0; kk < C::kBN / 16; ++kk)
      wgmmaRS<T, C::kD>(acc, pk[0][kk], smemDesc(vBuf(t) + kk * 16 * 128, C::kBN * 128));
    wgCommit();
  };
  // A split call's O = O + PV, once the tile's P V is done (before the rescale by corr).
  auto foldPV = [&] {
    if constexpr (kSplit) {
#pragma unroll
      for (int i = 0; i < C::kOT * 4; ++i) oFlat[i] += acc[i];
    }
  };

  // Iteration t overlaps the softmax of tile t with P(t-1) V(t-1) on the tensor cores: it issues
  // S(t) = Q K(t)^T and then P(t-1) V(t-1), waits for S(t) only, runs the softmax, then waits for
  // P V and rescales O. Then K(t+2) and V(t+1) are issued into the buffers S(t) and P(t-1) V(t-1)
  // have released, so every load has a whole iteration to land.
  for (int t = 0; t < numTiles; ++t) {
    const int nb = nHi - 1 - t;
    float s[1][C::kNT][4];
    float(&sFlat)[C::kNT * 4] = reinterpret_cast<float(&)[C::kNT * 4]>(s);
    pinRegs(acc);
    wgFence();
    if constexpr (kSplit) {  // hi.lo and lo.hi first, while the accumulator is small
#pragma unroll
      for (int kk = 0; kk < C::kD / 16; ++kk) {
        const uint64_t a = smemDesc(qAddr + (kk / 4) * C::kBM * 128 + (kk % 4) * 32, 16);
        const uint64_t b = smemDesc(kBuf(t) + (kk / 4) * C::kBN * 128 + (kk % 4) * 32, 16);
        const uint64_t aLo = smemDesc(qAddr + C::kQPlane + (kk / 4) * C::kBM * 128 + (kk % 4) * 32, 16);
        const uint64_t bLo = smemDesc(kBuf(t) + C::kTilePlane + (kk / 4) * C::kBN * 128 + (kk % 4) * 32, 16);
        if (kk == 0)
          wgmmaSS<T, C::kBN, false>(sFlat, a, bLo);
        else
          wgmmaSS<T, C::kBN, true>(sFlat, a, bLo);
        wgmmaSS<T, C::kBN, true>(sFlat, aLo, b);
      }
    }
#pragma unroll
    for (int kk = 0; kk < C::kD / 16; ++kk) {
      const uint64_t a = smemDesc(qAddr + (kk / 4) * C::kBM * 128 + (kk % 4) * 32, 16);
      const uint64_t b = smemDesc(kBuf(t) + (kk / 4) * C::kBN * 128 + (kk % 4) * 32, 16);
      if (kk == 0 && !kSplit)
        wgmmaSS<T, C::kBN, false>(sFlat, a, b);
      else
        wgmmaSS<T, C::kBN, true>(sFlat, a, b);
    }
    wgCommit();
    if (t > 0) {
      issuePV(t - 1);
      wgWait<1>();
    } else {
      wgWait<0>();
    }
    pinRegs(sFlat);

    const int n0 = nb * C::kBN;
    if constexpr (!kFull && kSplit) {  // the general copy scales its scores before transforming them
#pragma unroll
      for (int i = 0; i < C::kNT * 4; ++i) sFlat[i] *= factor.score;
    }
    transformScores<1, C::kNT, kFull>(p, s, frame, n0 + (lane & 3) * 2, span.needsMask(p, n0, C::kBN, lk), slope);
    float corr[1][2];
    onlineSoftmax<1, C::kNT, (C::kNT <= 8)>(s, rowMax, rowSum, kFull ? p.scaleLog2 * factor.score : 1.f, corr);
    if (t > 0) {
      wgWait<0>();
      pinRegs(acc);
      pinRegs(sFlat);
      foldPV();
      rescaleO(o, corr);
    }
    if constexpr (kSplit)
      packPSplit(s, pk, pkLo);
    else
      packP<T>(s, pk);

    cpAsyncWait<0>();  // K(t+1) and V(t), issued an iteration ago
    fenceProxyAsync();
    __syncthreads();  // ... visible to every warpgroup, and every warpgroup is done with K(t), V(t-1)
    if (t + 2 < numTiles) loadK(t + 2);
    if (t + 1 < numTiles) loadV(t + 1);
    cpAsyncCommit();
  }
  if (numTiles > 0) {
    pinRegs(acc);
    issuePV(numTiles - 1);
    wgWait<0>();
    pinRegs(acc);
    foldPV();
  }
  if constexpr (kSplit) {
#pragma unroll
    for (int i = 0; i < C::kOT * 4; ++i) oFlat[i] *= factor.out;
  }

  storeRows<TO, 1, C::kOT, kFull>(p, w, o, rowMax, rowSum, m0, warpRow, lane, rowsTotal);
}
#endif  // FA_WGMMA_DEVICE

template <class C, typename T, bool kFull, bool kPaged>
__global__ void __launch_bounds__(C::kThreads, C::kMinBlocks) fwdKernelWg(const __grid_constant__ FwdParams p) {
#ifdef FA_WGMMA_DEVICE
  extern __shared__ __align__(1024) unsigned char smem[];
  waitPriorGrid();  // (launch.h) the previous kernel's writes, before any read
  allowNextGrid();
  fwdBodyWg<C, T, kFull, kPaged>(p, smem);
#else
  __trap();  // built for sm_90a only; the host never launches it elsewhere
#endif
}

}  // namespace fa
