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

template <typename T, int D>
cudaError_t prepareWg() {
  static cudaError_t done = cudaFuncSetAttribute(fwdKernelWg<WgTileOf<D>, T>,
                                                 cudaFuncAttributeMaxDynamicSharedMemorySize, WgTileOf<D>::kSmemBytes);
  return done;
}

template <typename T, int D>
cudaError_t runFwdWgmma(const FwdParams& p, cudaStream_t stream) {
  using C = WgTileOf<D>;
  if (cudaError_t e = prepareWg<T, D>(); e != cudaSuccess) return e;
  if (p.numWork == 0) return cudaSuccess;
  fwdKernelWg<C, T><<<(unsigned)p.numWork, C::kThreads, C::kSmemBytes, stream>>>(p);
  return cudaGetLastError();
}

template <typename T, int D>
cudaError_t wgmmaTileInfo(TileInfo* info) {
  using C = WgTileOf<D>;
  cudaFuncAttributes attr{};
  if (cudaError_t e = cudaFuncGetAttributes(&attr, fwdKernelWg<C, T>); e != cudaSuccess) return e;
  if (attr.binaryVersion != 90) return cudaErrorNoKernelImageForDevice;
  if (cudaError_t e = prepareWg<T, D>(); e != cudaSuccess) return e;
  int occ = 0;
  if (cudaError_t e =
          cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, fwdKernelWg<C, T>, C::kThreads, C::kSmemBytes);
      e != cudaSuccess)
    return e;
  *info = TileInfo{C::kBM, C::kBN, occ > 0 ? occ : 1};
  return cudaSuccess;
}

#define FA_INSTANTIATE_WGMMA(T, D)                                        \
  template cudaError_t runFwdWgmma<T, D>(const FwdParams&, cudaStream_t); \
  template cudaError_t wgmmaTileInfo<T, D>(TileInfo*);

}  // namespace fa
