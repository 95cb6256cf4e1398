// The non-finite-V fix-up (fixup.h). The attention kernels zero-fill key rows past the end of a
// sequence (cp.async with a zero source size), so the only hidden keys a block multiplies by
// P = 0 are real keys of its own sequence inside the key tiles it loads: those are the keys this
// kernel scans.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "convert.cuh"
#include "fixup.h"
#include "fwd_rows.cuh"          // kLog2e, kLn2
#include "fwd_wgmma_launch.cuh"  // WgTileOf: the Hopper kernel's tile shapes
#include "launch.h"

namespace fa {
namespace {

constexpr int kFixThreads = 256, kFixWarps = kFixThreads / 32;
constexpr int kMaxDim = 256;            // the widest head-dim class
constexpr int kPerLane = kMaxDim / 32;  // head-dim elements per lane in the recompute

// Whether either of the two 16-bit values in x is Inf or NaN (all exponent bits set).
template <typename T>
__device__ __forceinline__ bool nonFinite2(uint32_t x) {
  constexpr uint32_t e = std::is_same<T, __half>::value ? 0x7C00u : 0x7F80u;
  return (x & e) == e || ((x >> 16) & e) == e;
}

// One block per work item of split 0: (sequence, kv head, query block of bm rows): scans the hidden
// keys' V, and recomputes the block's rows only where one is not finite.
template <typename T, typename O>
__global__ void __launch_bounds__(kFixThreads, 4)
    fixupKernel(const __grid_constant__ FwdParams p, int bm, int bn, O* __restrict__ out, int outDim) {
  waitPriorGrid();  // (launch.h) the attention kernel's out and lse, or the previous call's writes
  allowNextGrid();
  const WorkItem w = workItem(p, blockIdx.x);
  if (w.split != 0) return;
  const int G = p.group, lq = w.lq, lk = w.lk, m0 = w.mBlock * bm;
  const int rowEnd = min(m0 + bm, lq * G);
  const int shift = lk - lq;
  auto rowOf = [&](int j) { return p.blockTable ? keyRow<true>(p, w, j) : keyRow<false>(p, w, j); };
  const T* vBase = static_cast<const T*>(p.v) + (int64_t)w.hk * p.vHeadStride;
  {  // the scan
    int nLo, nHi;
    keyBlockRange(w.mBlock, bm, bn, lq, lk, G, p.windowLeft, p.windowRight, nLo, nHi);
    if (m0 >= rowEnd || nHi <= nLo) return;

    // The keys the attention kernel loaded for this block, [kLo, kHi), less the keys every row of
    // it sees, [seeLo, seeHi] (visibility is monotone in the row: the last row's lower bound and
    // the first row's upper bound), leaves A = [kLo, aHi) and B = [bLo, kHi).
    const int kLo = nLo * bn, kHi = min(nHi * bn, lk);
    const int seeLo = max(0, (rowEnd - 1) / G + shift - p.windowLeft);
    const int seeHi = min(lk - 1, m0 / G + shift + p.windowRight);
    int aHi = kHi, bLo = kHi;
    if (seeLo <= seeHi) {
      aHi = min(max(seeLo, kLo), kHi);
      bLo = min(max(seeHi + 1, kLo), kHi);
    }
    // A and B hold at most a few tiles of keys (about bn plus the block's rows on each side; a
    // block none of whose keys all rows see has fewer than bm + left + right + 2 bn), so the count
    // of 16-byte chunks fits an int. Four independent loads per thread are in flight at a time.
    const int nA = aHi - kLo, nKeys = nA + (kHi - bLo);
    bool bad = false;
    if constexpr (std::is_same<T, float>::value) {  // a split call's float32 V, rows of any width: one value a load
      const int total = nKeys * p.dv;
      for (int idx = threadIdx.x; idx < total; idx += kFixThreads) {
        const int key = idx / p.dv, c = idx - key * p.dv;
        const int j = key < nA ? kLo + key : bLo + (key - nA);
        bad |= !isfinite(__ldg(vBase + rowOf(j) * p.vRowStride + c));
      }
    } else {
      const int chunks = p.dv / 8, total = nKeys * chunks;
      for (int base = threadIdx.x; base < total; base += 4 * kFixThreads) {
        uint4 x[4];
#pragma unroll
        for (int u = 0; u < 4; ++u) {
          const int idx = base + u * kFixThreads, key = idx / chunks, c = idx - key * chunks;
          const int j = key < nA ? kLo + key : bLo + (key - nA);
          x[u] = idx < total ? __ldg(reinterpret_cast<const uint4*>(vBase + rowOf(j) * p.vRowStride + c * 8))
                             : make_uint4(0, 0, 0, 0);
        }
#pragma unroll
        for (int u = 0; u < 4; ++u)
          bad |= nonFinite2<T>(x[u].x) | nonFinite2<T>(x[u].y) | nonFinite2<T>(x[u].z) | nonFinite2<T>(x[u].w);
      }
    }
    if (!__syncthreads_or(bad)) return;  // the normal case: nothing hidden is non-finite
  }

  // Recompute the rows of the block, kRows at a time per warp (rows r0 .. r0 + kRows - 1: one query's
  // grouped heads, or neighbouring queries), each over exactly the keys it sees: a key's K and V rows
  // are loaded once for all of them, and their kRows reductions are independent. Scores as
  // transformScores computes them (log2 domain), online softmax in float32, the lse of storeRows.
  constexpr int kRows = 1;  // rows a warp recomputes together: 1, so the scan stays small (52 registers, not 128)
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, H = p.numHeads;
  const T* qBase = static_cast<const T*>(p.q);
  const T* kBase = static_cast<const T*>(p.k) + (int64_t)w.hk * p.kHeadStride;
  for (int r0 = m0 + warp * kRows; r0 < rowEnd; r0 += kFixWarps * kRows) {
    int iq[kRows], hq[kRows], jLo[kRows], jHi[kRows];
    float q[kRows][kPerLane], acc[kRows][kPerLane], mx[kRows], sum[kRows], slope[kRows];
    int lo = lk, hi = -1;  // the union of the rows' key ranges
#pragma unroll
    for (int u = 0; u < kRows; ++u) {
      const int r = min(r0 + u, rowEnd - 1), i = r / G, diag = i + shift;  // (a row past the end repeats the last)
      iq[u] = i;
      hq[u] = w.hk * G + (r - i * G);
      jLo[u] = max(0, diag - p.windowLeft);
      jHi[u] = r0 + u < rowEnd ? min(lk - 1, diag + p.windowRight) : -1;
      if (jLo[u] <= jHi[u]) lo = min(lo, jLo[u]), hi = max(hi, jHi[u]);
      const T* qRow = qBase + (int64_t)(w.qStart + i) * p.qRowStride + (int64_t)hq[u] * p.qHeadStride;
#pragma unroll
      for (int t = 0; t < kPerLane; ++t) {
        const int c = lane + 32 * t;
        q[u][t] = c < p.d ? toF(qRow[c]) : 0.f;
        acc[u][t] = 0.f;
      }
      slope[u] = p.alibiSlopes ? p.alibiSlopes[hq[u]] * kLog2e : 0.f;
      mx[u] = -INFINITY;
      sum[u] = 0.f;
    }
    for (int j = lo; j <= hi; ++j) {
      const int64_t at = rowOf(j);
      const T* kRow = kBase + at * p.kRowStride;
      const T* vRow = vBase + at * p.vRowStride;
      float kx[kPerLane], vx[kPerLane];
#pragma unroll
      for (int t = 0; t < kPerLane; ++t) {
        kx[t] = lane + 32 * t < p.d ? toF(kRow[lane + 32 * t]) : 0.f;
        vx[t] = lane + 32 * t < p.dv ? toF(vRow[lane + 32 * t]) : 0.f;
      }
      float dot[kRows];
#pragma unroll
      for (int u = 0; u < kRows; ++u) {
        dot[u] = 0.f;
#pragma unroll
        for (int t = 0; t < kPerLane; ++t) dot[u] = fmaf(q[u][t], kx[t], dot[u]);
      }
#pragma unroll
      for (int o = 16; o > 0; o >>= 1)
#pragma unroll
        for (int u = 0; u < kRows; ++u) dot[u] += __shfl_xor_sync(0xffffffffu, dot[u], o);
#pragma unroll
      for (int u = 0; u < kRows; ++u) {
        if (j < jLo[u] || j > jHi[u]) continue;  // warp-uniform; a hidden key's V is never touched
        float s = p.softcapInv != 0.f ? softcapScore(p, dot[u]) : dot[u] * p.scaleLog2;
        if (p.alibiSlopes) s -= slope[u] * fabsf(float(iq[u] + shift - j));
        const float mNew = fmaxf(mx[u], s), mUse = mNew == -INFINITY ? 0.f : mNew;
        const float corr = exp2f(mx[u] - mUse), pj = exp2f(s - mUse);
        sum[u] = fmaf(sum[u], corr, pj);
#pragma unroll
        for (int t = 0; t < kPerLane; ++t) acc[u][t] = fmaf(acc[u][t], corr, pj * vx[t]);
        mx[u] = mNew;
      }
    }
#pragma unroll
    for (int u = 0; u < kRows; ++u) {
      if (r0 + u >= rowEnd) break;
      // As storeRows ends a row (finishRow: an empty row, the sink).
      const int i = iq[u], h = hq[u];
      const bool empty = sum[u] == 0.f;
      const RowEnd end = finishRow(mx[u], sum[u], p.sinks ? p.sinks[h] * kLog2e : -INFINITY);
      O* dst = out + ((int64_t)(w.qStart + i) * H + h) * outDim;
#pragma unroll
      for (int t = 0; t < kPerLane; ++t)
        if (lane + 32 * t < outDim) dst[lane + 32 * t] = fromF<O>(empty ? 0.f : acc[u][t] * end.scale);
      if (p.lse && lane == 0) {
        const int64_t at =
            p.lseFixedS > 0 ? (int64_t)(w.b * H + h) * p.lseFixedS + i : (int64_t)h * p.totalQ + w.qStart + i;
        p.lse[at] = end.lse;
      }
    }
  }
}

// Rows and keys per block of the attention kernel instance (tile.h, fwd_wgmma_launch.cuh).
struct Shape {
  int bm, bn;
};
template <int D>
Shape shapeOf(Tile tile, bool split) {
  if (split && tile != Tile::Wgmma)
    return tile == Tile::Small ? Shape{SplitSmallTile<D>::kBM, SplitSmallTile<D>::kBN}
                               : Shape{SplitMainTile<D>::kBM, SplitMainTile<D>::kBN};
  if (tile == Tile::Small) return Shape{SmallTile<D>::kBM, SmallTile<D>::kBN};
  if (tile == Tile::Wgmma) {
    if constexpr (D == 64 || D == 128)
      return split ? Shape{WgSplitTileOf<D>::kBM, WgSplitTileOf<D>::kBN} : Shape{WgTileOf<D>::kBM, WgTileOf<D>::kBN};
    return Shape{0, 0};
  }
  return Shape{MainTile<D>::kBM, MainTile<D>::kBN};
}

template <typename T, typename O>
cudaError_t launchAs(const FwdParams& p, Shape s, void* out, int outDim, cudaStream_t st) {
  return launchDependent(fixupKernel<T, O>, dim3((unsigned)p.numWork), dim3(kFixThreads), 0, st, p, s.bm, s.bn,
                         static_cast<O*>(out), outDim);
}

}  // namespace

bool fixupNeeded(const std::vector<int>& cuSeqlensQ, const std::vector<int>& cuSeqlensK, int left, int right) {
  if (left >= kUnbounded && right >= kUnbounded) return false;
  // Row i of a sequence sees keys max(0, i + lk - lq - left) .. min(lk - 1, i + lk - lq + right):
  // all lk of them, for every row, exactly when left >= lk - 1 and right >= lq - 1.
  for (size_t b = 0; b + 1 < cuSeqlensQ.size() && b + 1 < cuSeqlensK.size(); ++b) {
    const int lq = cuSeqlensQ[b + 1] - cuSeqlensQ[b], lk = cuSeqlensK[b + 1] - cuSeqlensK[b];
    if (lq > 0 && lk > 0 && (left < lk - 1 || right < lq - 1)) return true;
  }
  return false;
}

cudaError_t launchFixup(const FwdParams& p, DType computeT, Tile tile, int headDimClass, bool split, DType outT,
                        void* out, int outDim, cudaStream_t stream) {
  if (p.numWork <= 0) return cudaSuccess;
  const Shape s = headDimClass == 64    ? shapeOf<64>(tile, split)
                  : headDimClass == 128 ? shapeOf<128>(tile, split)
                                        : shapeOf<256>(tile, split);
  if (s.bm <= 0 || p.d > kMaxDim || p.dv > kMaxDim || outDim > p.dv) return cudaErrorInvalidValue;
  if (computeT == DType::F32 && outT == DType::F32) return launchAs<float, float>(p, s, out, outDim, stream);
  if (p.dv % 8 != 0) return cudaErrorInvalidValue;  // (the scan reads 16-byte chunks of half rows)
  if (computeT == DType::F16 && outT == DType::F32) return launchAs<__half, float>(p, s, out, outDim, stream);
  if (computeT == DType::F16 && outT == DType::F16) return launchAs<__half, __half>(p, s, out, outDim, stream);
  if (computeT == DType::BF16 && outT == DType::BF16)
    return launchAs<__nv_bfloat16, __nv_bfloat16>(p, s, out, outDim, stream);
  if (computeT == DType::BF16 && outT == DType::F32) return launchAs<__nv_bfloat16, float>(p, s, out, outDim, stream);
  return cudaErrorInvalidValue;
}

}  // namespace fa
