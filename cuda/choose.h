// The kernel instance of a call and the dispatch to it (choose.cu). Host code.
#pragma once
#include <cuda_runtime.h>

#include <functional>

#include "forward.h"

namespace fa {

// Head dims are padded to multiples of 8 (16-byte rows); the padding is zeros.
int paddedDim(int d);

// The kernel's scale and softcap parameters, computed once for both the kernel choice and FwdParams.
float scaleLog2Of(const ForwardArgs& a);
float softcapInvOf(const ForwardArgs& a);

// The one function that decides which kernel instance serves a call; `hasImage` says whether the
// device has an image for a choice (the Hopper kernel exists for sm_90 only).
KernelChoice chooseKernel(const ForwardArgs& a, const std::function<bool(const KernelChoice&)>& hasImage);

// Enqueues the attention kernel of choice `k` on `stream`.
cudaError_t runKernel(const KernelChoice& k, const FwdParams& p, cudaStream_t stream);

// A choice's tile configuration (rows, keys, blocks per SM), asked once per process and choice.
cudaError_t cachedTileInfo(const KernelChoice& k, TileInfo* ti);

// The device's SM count (0 when it cannot be asked).
int multiprocessors();

}  // namespace fa
