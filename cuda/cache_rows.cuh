// Where key t of a paged call's sequences (laid end to end) sits in the cache (aux_kernels.h
// PagedRows), for the small kernels that gather keys (aux_kernels.cu, split_rows.cu).
#pragma once
#include <cstdint>

#include "aux_kernels.h"

namespace fa {

// Sequence b of key t: the last b with cu[b] <= t (cu non-decreasing, cu[0] = 0 <= t < cu[batch]).
__device__ __forceinline__ int sequenceOf(const int* cu, int batch, int64_t t) {
  int lo = 0, hi = batch - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) >> 1;
    if (cu[mid] <= t)
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
}

__device__ __forceinline__ int64_t cacheRow(const int* table, int b, int maxBlocks, int blockSize, int pos) {
  const int blk = pos / blockSize;
  return (int64_t)table[(int64_t)b * maxBlocks + blk] * blockSize + (pos - blk * blockSize);
}

// The cache row (of `heads` rows of the call) that holds key t.
__device__ __forceinline__ int64_t cacheRowOf(const PagedRows& pr, int64_t t) {
  const int b = sequenceOf(pr.cuSeqlensK, pr.batch, t);
  return cacheRow(pr.table, b, pr.maxBlocks, pr.blockSize, int(t - pr.cuSeqlensK[b]));
}

}  // namespace fa
