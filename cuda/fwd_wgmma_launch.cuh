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

// The flat and the paged copy (a KV cache call reads keys through the block table).
template <typename T, int D>
auto wgKernelOf(bool paged) {
  return paged ? fwdKernelWg<WgTileOf<D>, T, true> : fwdKernelWg<WgTileOf<D>, T, false>;
}

template <typename T, int D>
cudaError_t prepareWg() {
  static cudaError_t done = [] {
    for (bool paged : {false, true})
      if (cudaError_t e = cudaFuncSetAttribute(wgKernelOf<T, D>(paged), cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               WgTileOf<D>::kSmemBytes);
          e != cudaSuccess)
        return e;
    return cudaSuccess;
  }();
  return done;
}

template <typename T, int D>
cudaError_t runFwdWgmma(const FwdParams& p, cudaStream_t stream) {
  using C = WgTileOf<D>;
  if (cudaError_t e = prepareWg<T, D>(); e != cudaSuccess) return e;
  if (p.numWork == 0) return cudaSuccess;
  return launchDependent(wgKernelOf<T, D>(p.blockTable != nullptr), dim3((unsigned)p.numWork), dim3(C::kThreads),
                         C::kSmemBytes, stream, p);
}

// The blocks an SM holds: the lesser of the two copies.
template <typename T, int D>
cudaError_t wgmmaTileInfo(TileInfo* info) {
  using C = WgTileOf<D>;
  int occ = 1 << 30;
  for (bool paged : {false, true}) {
    cudaFuncAttributes attr{};
    if (cudaError_t e = cudaFuncGetAttributes(&attr, wgKernelOf<T, D>(paged)); e != cudaSuccess) return e;
    if (attr.binaryVersion != 90) return cudaErrorNoKernelImageForDevice;
    if (cudaError_t e = prepareWg<T, D>(); e != cudaSuccess) return e;
    int o = 0;
    if (cudaError_t e =
            cudaOccupancyMaxActiveBlocksPerMultiprocessor(&o, wgKernelOf<T, D>(paged), C::kThreads, C::kSmemBytes);
        e != cudaSuccess)
      return e;
    occ = o < occ ? o : occ;
  }
  *info = TileInfo{C::kBM, C::kBN, occ > 0 ? occ : 1};
  return cudaSuccess;
}

#define FA_INSTANTIATE_WGMMA(T, D)                                        \
  template cudaError_t runFwdWgmma<T, D>(const FwdParams&, cudaStream_t); \
  template cudaError_t wgmmaTileInfo<T, D>(TileInfo*);

}  // namespace fa
