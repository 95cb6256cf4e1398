// Launch side of the kernel template: shared-memory opt-in, occupancy, grid.
#pragma once
#include "fwd.h"
#include "fwd_kernel.cuh"

namespace fa {

// The four copies of a tile's kernel: (full, paged). The float32 tiles (split.cuh) have two: their
// paged calls read a gathered copy (forward.cu), so only the flat copies are compiled.
template <class C, typename T>
auto kernelOf(bool full, bool paged) {
  if constexpr (C::kPlanes == 2)
    return full ? fwdKernel<C, T, true, false> : fwdKernel<C, T, false, false>;
  else
    return full ? (paged ? fwdKernel<C, T, true, true> : fwdKernel<C, T, true, false>)
                : (paged ? fwdKernel<C, T, false, true> : fwdKernel<C, T, false, false>);
}

template <class C, typename T>
cudaError_t prepareTile() {
  // Opt in to more than 48 KB of dynamic shared memory once per kernel (cheap to repeat).
  static cudaError_t done = [] {
    for (int i = 0; i < 4; ++i)
      if (cudaError_t e = cudaFuncSetAttribute(kernelOf<C, T>(i & 1, i & 2),
                                               cudaFuncAttributeMaxDynamicSharedMemorySize, C::kSmemBytes);
          e != cudaSuccess)
        return e;
    return cudaSuccess;
  }();
  return done;
}

template <class C, typename T>
cudaError_t launchTile(const FwdParams& p, bool full, cudaStream_t stream) {
  if (cudaError_t e = prepareTile<C, T>(); e != cudaSuccess) return e;
  const long long blocks = p.numWork;
  if (blocks == 0) return cudaSuccess;
  if (blocks > 0x7fffffffLL) return cudaErrorInvalidConfiguration;
  return launchDependent(kernelOf<C, T>(full, p.blockTable != nullptr), dim3((unsigned)blocks), dim3(C::kThreads),
                         C::kSmemBytes, stream, p);
}

// The blocks an SM holds: the least over the four copies, so one plan fits whichever runs.
template <class C, typename T>
cudaError_t tileInfoOf(TileInfo* info) {
  if (cudaError_t e = prepareTile<C, T>(); e != cudaSuccess) return e;
  int occ = 1 << 30;
  for (int i = 0; i < 4; ++i) {
    int o = 0;
    if (cudaError_t e =
            cudaOccupancyMaxActiveBlocksPerMultiprocessor(&o, kernelOf<C, T>(i & 1, i & 2), C::kThreads, C::kSmemBytes);
        e != cudaSuccess)
      return e;
    occ = o < occ ? o : occ;
  }
  *info = TileInfo{C::kBM, C::kBN, occ > 0 ? occ : 1};
  return cudaSuccess;
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

// float32 inputs as float16 pairs (split.cuh).
template <int D>
cudaError_t runFwdSplit(const FwdParams& p, Tile tile, bool full, cudaStream_t stream) {
  return tile == Tile::Small ? launchTile<SplitSmallTile<D>, __half>(p, full, stream)
                             : launchTile<SplitMainTile<D>, __half>(p, full, stream);
}

template <int D>
cudaError_t fwdSplitTileInfo(Tile tile, TileInfo* info) {
  return tile == Tile::Small ? tileInfoOf<SplitSmallTile<D>, __half>(info) : tileInfoOf<SplitMainTile<D>, __half>(info);
}

#define FA_INSTANTIATE_SPLIT(D)                                                    \
  template cudaError_t runFwdSplit<D>(const FwdParams&, Tile, bool, cudaStream_t); \
  template cudaError_t fwdSplitTileInfo<D>(Tile, TileInfo*);

#define FA_INSTANTIATE(T, D)                                                     \
  template cudaError_t runFwd<T, D>(const FwdParams&, Tile, bool, cudaStream_t); \
  template cudaError_t fwdTileInfo<T, D>(Tile, TileInfo*);

}  // namespace fa
