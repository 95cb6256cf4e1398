// Reading a call's arguments from JavaScript into plain C++ (fa::ForwardArgs): two typed arrays that
// src/cuda/pack.ts fills, numbers in a Float64Array (slots below) and integer arrays end to end in an
// Int32Array. The TypeScript side validated them; what is checked here only keeps a wrong call from
// reaching the GPU.
#pragma once
#include <napi.h>

#include "forward.h"

namespace addon {

// The slots of the numbers array: src/cuda/pack.ts SLOT, the same names in the same order. After them,
// numSinks sink logits and numSlopes ALiBi slopes.
enum Slot {
  kDtype,
  kBatch,
  kTotalQ,
  kTotalK,
  kMaxSeqlenQ,
  kNumHeads,
  kNumKvHeads,
  kHeadDim,
  kHeadDimV,
  kWindowLeft,
  kWindowRight,
  kSoftmaxScale,
  kSoftcap,
  kFixedSeqlenQ,
  kReturnLse,
  kPoison,
  kFloat32AsHalf,
  kForceSplits,
  kForceTile,
  kWgmma,
  kOrder,
  kNumSinks,
  kNumSlopes,
  kPaged,
  kMaxBlocks,
  kBlockSize,
  kPoolRows,
  kTotalNew,  // -1: no write
  kSlots
};

// The ints array is the paging array as the kernels read it: [blockTable (batch x maxBlocks) |
// cuSeqlensK (batch + 1) | cuSeqlensNew (batch + 1) | cacheSeqlens (batch) | cuSeqlensQ (batch + 1)],
// the table empty without a cache and the write's arrays empty without new rows. a.paging points into
// it (valid during the call that parsed it). Throws a TypeError or RangeError on a malformed pair.
fa::ForwardArgs parseForwardArgs(const Napi::Value& numbers, const Napi::Value& ints, bool* returnLse);
fa::DType parseDType(const Napi::Value& v);

}  // namespace addon
