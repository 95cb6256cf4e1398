// The non-finite-V fix-up: the step after the attention (and combine) kernels of a masked call.
//
// In a key tile that the mask hides from some rows of a block, those rows have P = 0 for the
// hidden keys, and the tensor-core product 0 * NaN (or 0 * Inf) is NaN: a non-finite value in V
// would reach rows that cannot see it (docs/semantics.md, rule 6). The attention kernels are left
// as they are; instead, one fix-up block per work item of split 0 (sequence, kv head, query block)
// scans the V rows of exactly the keys the attention kernel loaded for that block but some row of
// it cannot see. Normally they are all finite and the block exits. If one is not, the block
// recomputes every row of the query block (every head of the group) in float32 over the keys each
// row sees, and overwrites out and lse. Host launcher only; no N-API types.
#pragma once
#include <cuda_runtime.h>

#include <vector>

#include "aux_kernels.h"
#include "params.h"
#include "tile.h"

namespace fa {

// Whether any row of the call misses a key of its sequence (a causal or window mask that cuts
// some sequence, or Lq > Lk under causal): only then can a hidden key sit in a loaded tile.
// left, right: the window as FwdParams holds it, in [0, kUnbounded]. O(batch), and O(1) when
// both sides are unbounded.
bool fixupNeeded(const std::vector<int>& cuSeqlensQ, const std::vector<int>& cuSeqlensK, int left, int right);

// Enqueues the fix-up on `stream`, after every other kernel of the call. `p` is the call's
// FwdParams (q, k, v in the compute dtype `computeT`, as the attention kernel read them; the
// work list; mask and score parameters; lse and its layout); tile and headDimClass name the
// attention kernel instance that ran (its rows and keys per block decide which keys it loaded).
// out is the call's final output: outT, [totalQ][numHeads][outDim], contiguous.
// A split call (float32 as float16 pairs, split.cuh: `split`, its tiles) passes computeT float32 and
// p with the caller's float32 q, k, v, their strides and real head dims: scan and recompute read those.
cudaError_t launchFixup(const FwdParams& p, DType computeT, Tile tile, int headDimClass, bool split, DType outT,
                        void* out, int outDim, cudaStream_t stream);

}  // namespace fa
