// A call's work list: the split count, the plan cache key, and the work items in the planned order
// with the small metadata the kernels read. Plain C++ (host side of cuda/forward.cu).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "forward.h"
#include "plan_cache.h"
#include "tile.h"

namespace fa {

// The split-KV count of `blocks` thread blocks on `slots` resident ones, whose longest key range
// is `maxKeyBlocks` tiles; `small`: the 16-row (decode-like) tile.
int chooseSplits(long long blocks, int slots, int maxKeyBlocks, bool small);

// The inputs that decide a call's work list: a plan cache key.
uint64_t planKey(const ForwardArgs& a, const KernelChoice& k, const TileInfo& ti);

// Plans the work items of a call (query block, kv head, split) in the planned order, and lays out
// the small metadata the kernels read (ALiBi slopes, sinks, then the work items) in `meta`.
// left, right: the window as FwdParams holds it. Empty string on success.
std::string planWork(const ForwardArgs& a, const TileInfo& ti, int sms, int left, int right, CachedPlan& plan,
                     std::vector<unsigned char>& meta);

}  // namespace fa
