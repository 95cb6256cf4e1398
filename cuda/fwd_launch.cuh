// Launch side of the kernel template: shared-memory opt-in, occupancy, grid.
#pragma once
#include "fwd.h"
#include "fwd_kernel.cuh"

namespace fa {

template <class C, typename T>
cudaError_t prepareTile() {
  // Opt in to more than 48 KB of dynamic shared memory once per kernel (cheap to repeat).
  static cudaError_t done = [] {
    cudaError_t e =
        cudaFuncSetAttribute(fwdKernel<C, T, true>, cudaFuncAttributeMaxDynamicSharedMemorySize, C::kSmemBytes);
    return e != cudaSuccess ? e
                            : cudaFuncSetAttribute(fwdKernel<C, T, false>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                   C::kSmemBytes);
  }();
  return done;
}

template <class C, typename T>
cudaError_t launchTile(const FwdParams& p, bool full, cudaStream_t stream) {
  if (cudaError_t e = prepareTile<C, T>(); e != cudaSuccess) return e;
  const long long blocks = p.numWork;
  if (blocks == 0) return cudaSuccess;
  if (blocks > 0x7fffffffLL) return cudaErrorInvalidConfiguration;
  if (full)
    fwdKernel<C, T, true><<<(unsigned)blocks, C::kThreads, C::kSmemBytes, stream>>>(p);
  else
    fwdKernel<C, T, false><<<(unsigned)blocks, C::kThreads, C::kSmemBytes, stream>>>(p);
  return cudaGetLastError();
}

template <class C, typename T>
cudaError_t tileInfoOf(TileInfo* info) {
  if (cudaError_t e = prepareTile<C, T>(); e != cudaSuccess) return e;
  int occ = 0, occ2 = 0;
  cudaError_t e =
      cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, fwdKernel<C, T, true>, C::kThreads, C::kSmemBytes);
  if (e == cudaSuccess)
    e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ2, fwdKernel<C, T, false>, C::kThreads, C::kSmemBytes);
  occ = occ2 < occ ? occ2 : occ;
  *info = TileInfo{C::kBM, C::kBN, occ > 0 ? occ : 1};
  return e;
}

template <typename T, int D>
cudaError_t runFwd(const FwdParams& p, Tile tile, bool full, cudaStream_t stream) {
  return tile == Tile::Small ? launchTile<SmallTile<D>, T>(p, full, stream)
                             : launchTile<MainTile<D>, T>(p, full, stream);
}

template <typename T, int D>
cudaError_t fwdTileInfo(Tile tile, TileInfo* info) {
  return tile == Tile::Small ? tileInfoOf<SmallTile<D>, T>(info) : tileInfoOf<MainTile<D>, T>(info);
}

#define FA_INSTANTIATE(T, D)                                                     \
  template cudaError_t runFwd<T, D>(const FwdParams&, Tile, bool, cudaStream_t); \
  template cudaError_t fwdTileInfo<T, D>(Tile, TileInfo*);

}  // namespace fa
