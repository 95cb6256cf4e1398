// The kernel entry points the host planner dispatches to. Their definitions live in
// fwd_launch.cuh and are instantiated once per (dtype, head-dim class) in generated files
// (see CMakeLists.txt), so the dispatcher never compiles a kernel itself.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "params.h"
#include "tile.h"

namespace fa {

// `full` runs the loop's fast copy (fwd_kernel.cuh kFull), as the planner chose it (forward.cu).
template <typename T, int D>
cudaError_t runFwd(const FwdParams& p, Tile tile, bool full, cudaStream_t stream);

template <typename T, int D>
cudaError_t fwdTileInfo(Tile tile, TileInfo* info);

// float32 inputs computed as float16 pairs on mma.sync (split.cuh, tile.h SplitMainTile/SplitSmallTile).
template <int D>
cudaError_t runFwdSplit(const FwdParams& p, Tile tile, bool full, cudaStream_t stream);

template <int D>
cudaError_t fwdSplitTileInfo(Tile tile, TileInfo* info);

// The Hopper kernel (fwd_wgmma.cuh, sm_90a only) for head-dim classes 64 and 128; kFull: the fast
// path, else the general copy. wgmmaTileInfo fails where the kernel has no image for the device.
template <typename T, int D, bool kFull>
cudaError_t runFwdWgmma(const FwdParams& p, cudaStream_t stream);

template <typename T, int D, bool kFull>
cudaError_t wgmmaTileInfo(TileInfo* info);

// The Hopper kernel for float32 as float16 pairs (split.cuh), the same two copies.
template <int D, bool kFull>
cudaError_t runFwdWgmmaSplit(const FwdParams& p, cudaStream_t stream);

template <int D, bool kFull>
cudaError_t wgmmaSplitTileInfo(TileInfo* info);

}  // namespace fa
