// Launch side of the Hopper kernel (fwd_wgmma.cuh). Its instances are compiled for sm_90a only
// (CMakeLists.txt), so on any other GPU the kernel has no image: wgmmaTileInfo then fails and
// the planner takes the mma.sync kernel instead.
#pragma once
#include "fwd.h"
#include "fwd_wgmma.cuh"

#include <type_traits>

namespace fa {

// The tile of each head-dim class (fwd_wgmma.cuh).
// d128: FlashAttention-3's 128 x 128 tile, one block per SM. d64: 128 x 64, two blocks per SM,
// so one block's start and end overlap the other's products (short sequences lost 15-20% with
// one block of 128 or 192 rows per SM, notes/cuda-kernel.md).
template <int D>
using WgTileOf = typename std::conditional<D == 64, WgTile<64, 2, 64, 2>, WgTile<128, 2, 128, 1>>::type;
// float32 as float16 pairs (split.cuh): both planes of Q, K and V in shared memory, so 64-key tiles
// (d128: 192 KB, one block per SM; d64: 96 KB, two: 128 registers and 180 bytes of spills, measured
// 115.9 TF/s on d64 full 8 x 2k against 106.2 with one block of 175 registers, H200).
template <int D>
using WgSplitTileOf = WgTile<D, 2, 64, (D == 64 ? 2 : 1), 2>;

// The flat and the paged copy (a KV cache call reads keys through the block table); a split tile has
// the flat one only (its paged calls read gathered copies, forward.cu). kFull: the fast path or the
// general copy (fwd_wgmma.cuh); each is an instance file of its own, so they compile in parallel.
template <class C, typename T, bool kFull>
auto wgKernelOf(bool paged) {
  if constexpr (C::kPlanes == 2)
    return fwdKernelWg<C, T, kFull, false>;
  else
    return paged ? fwdKernelWg<C, T, kFull, true> : fwdKernelWg<C, T, kFull, false>;
}

template <class C, typename T, bool kFull>
cudaError_t prepareWg() {
  static cudaError_t done = [] {
    for (bool paged : {false, true})
      if (cudaError_t e = cudaFuncSetAttribute(wgKernelOf<C, T, kFull>(paged),
                                               cudaFuncAttributeMaxDynamicSharedMemorySize, C::kSmemBytes);
          e != cudaSuccess)
        return e;
    return cudaSuccess;
  }();
  return done;
}

template <class C, typename T, bool kFull>
cudaError_t runWg(const FwdParams& p, cudaStream_t stream) {
  if (cudaError_t e = prepareWg<C, T, kFull>(); e != cudaSuccess) return e;
  if (p.numWork == 0) return cudaSuccess;
  return launchDependent(wgKernelOf<C, T, kFull>(p.blockTable != nullptr), dim3((unsigned)p.numWork), dim3(C::kThreads),
                         C::kSmemBytes, stream, p);
}

// The blocks an SM holds: the lesser of the two copies.
template <class C, typename T, bool kFull>
cudaError_t wgInfo(TileInfo* info) {
  int occ = 1 << 30;
  for (bool paged : {false, true}) {
    cudaFuncAttributes attr{};
    if (cudaError_t e = cudaFuncGetAttributes(&attr, wgKernelOf<C, T, kFull>(paged)); e != cudaSuccess) return e;
    if (attr.binaryVersion != 90) return cudaErrorNoKernelImageForDevice;
    if (cudaError_t e = prepareWg<C, T, kFull>(); e != cudaSuccess) return e;
    int o = 0;
    if (cudaError_t e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&o, wgKernelOf<C, T, kFull>(paged), C::kThreads,
                                                                      C::kSmemBytes);
        e != cudaSuccess)
      return e;
    occ = o < occ ? o : occ;
  }
  *info = TileInfo{C::kBM, C::kBN, occ > 0 ? occ : 1};
  return cudaSuccess;
}

template <typename T, int D, bool kFull>
cudaError_t runFwdWgmma(const FwdParams& p, cudaStream_t stream) {
  return runWg<WgTileOf<D>, T, kFull>(p, stream);
}
template <typename T, int D, bool kFull>
cudaError_t wgmmaTileInfo(TileInfo* info) {
  return wgInfo<WgTileOf<D>, T, kFull>(info);
}
template <int D, bool kFull>
cudaError_t runFwdWgmmaSplit(const FwdParams& p, cudaStream_t stream) {
  return runWg<WgSplitTileOf<D>, __half, kFull>(p, stream);
}
template <int D, bool kFull>
cudaError_t wgmmaSplitTileInfo(TileInfo* info) {
  return wgInfo<WgSplitTileOf<D>, __half, kFull>(info);
}

#define FA_INSTANTIATE_WGMMA(T, D, FULL)                                        \
  template cudaError_t runFwdWgmma<T, D, FULL>(const FwdParams&, cudaStream_t); \
  template cudaError_t wgmmaTileInfo<T, D, FULL>(TileInfo*);

#define FA_INSTANTIATE_WGMMA_SPLIT(D, FULL)                                       \
  template cudaError_t runFwdWgmmaSplit<D, FULL>(const FwdParams&, cudaStream_t); \
  template cudaError_t wgmmaSplitTileInfo<D, FULL>(TileInfo*);

}  // namespace fa
