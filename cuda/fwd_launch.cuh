// Launch side of the kernel template: shared-memory opt-in, occupancy, grid.
#pragma once
#include "fwd.h"
#include "fwd_kernel.cuh"

namespace fa {

template <class C, typename T>
cudaError_t prepareTile() {
  // Opt in to more than 48 KB of dynamic shared memory once per kernel (cheap to repeat).
  static cudaError_t done = cudaFuncSetAttribute(fwdKernel<C, T>, cudaFuncAttributeMaxDynamicSharedMemorySize, C::kSmemBytes);
  return done;
}

template <class C, typename T>
cudaError_t launchTile(const FwdParams& p, cudaStream_t stream) {
  if (cudaError_t e = prepareTile<C, T>(); e != cudaSuccess) return e;
  const long long blocks = (long long)p.numWork * p.numKvHeads;
  if (blocks == 0) return cudaSuccess;
  if (blocks > 0x7fffffffLL) return cudaErrorInvalidConfiguration;
  fwdKernel<C, T><<<(unsigned)blocks, C::kThreads, C::kSmemBytes, stream>>>(p);
  return cudaGetLastError();
}

template <class C, typename T>
cudaError_t tileInfoOf(TileInfo* info) {
  if (cudaError_t e = prepareTile<C, T>(); e != cudaSuccess) return e;
  int occ = 0;
  cudaError_t e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, fwdKernel<C, T>, C::kThreads, C::kSmemBytes);
  *info = TileInfo{C::kBM, C::kBN, C::kThreads, C::kSmemBytes, occ > 0 ? occ : 1};
  return e;
}

template <typename T, int D>
cudaError_t runFwd(const FwdParams& p, Tile tile, cudaStream_t stream) {
  return tile == Tile::Small ? launchTile<SmallTile<D>, T>(p, stream) : launchTile<MainTile<D>, T>(p, stream);
}

template <typename T, int D>
cudaError_t fwdTileInfo(Tile tile, TileInfo* info) {
  return tile == Tile::Small ? tileInfoOf<SmallTile<D>, T>(info) : tileInfoOf<MainTile<D>, T>(info);
}

#define FA_INSTANTIATE(T, D)                                                            \
  template cudaError_t runFwd<T, D>(const FwdParams&, Tile, cudaStream_t);              \
  template cudaError_t fwdTileInfo<T, D>(Tile, TileInfo*);

}  // namespace fa
