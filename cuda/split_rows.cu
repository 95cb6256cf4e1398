// The conversion of a float32 call's q, k and v into float16 pairs (split.cuh): the largest finite
// |x| of each tensor first, then both planes of each, one launch each for all three tensors.
#include <cuda_fp16.h>

#include "aux_kernels.h"
#include "cache_rows.cuh"
#include "split.cuh"

namespace fa {
namespace {

constexpr int kThreads = 256;

// The source of row r (of rows x srcLen): r itself, or for a paged job the cache row of its key.
__device__ __forceinline__ const float* sourceRow(const SplitJob& j, int64_t r) {
  if (!j.paged) return j.src + r * j.srcLen;
  const int64_t t = r / j.pr.heads;
  return j.src + (cacheRowOf(j.pr, t) * j.pr.heads + (r - t * j.pr.heads)) * j.srcLen;
}

// blockIdx.y picks the tensor; a grid-stride loop over its rows x copyLen elements, one atomic per warp.
__global__ void absMaxKernel(const SplitJobs jobs) {
  const SplitJob& j = jobs.job[blockIdx.y];
  const int64_t n = j.rows * j.copyLen;
  float m = 0.f;
  for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < n; idx += (int64_t)gridDim.x * blockDim.x) {
    const int64_t r = idx / j.copyLen;
    const float x = fabsf(sourceRow(j, r)[idx - r * j.copyLen]);
    if (x <= 3.402823466e38f) m = fmaxf(m, x);  // (false for inf and NaN)
  }
  for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
  if ((threadIdx.x & 31) == 0 && m > 0.f) atomicMax(jobs.maxBits + blockIdx.y, __float_as_uint(m));
}

// dst[r][c] = hi of src[r][c] * 2^e (0 past copyLen), dst[plane + r * dstLen + c] its lo.
__global__ void splitRowsKernel(const SplitJobs jobs) {
  const SplitJob& j = jobs.job[blockIdx.y];
  const int64_t n = j.rows * j.dstLen;
  const float scale = pow2(splitExponent(jobs.maxBits[blockIdx.y]));
  for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < n; idx += (int64_t)gridDim.x * blockDim.x) {
    const int64_t r = idx / j.dstLen;
    const int c = int(idx - r * j.dstLen);
    __half hi, lo;
    const float x = c < j.copyLen ? sourceRow(j, r)[c] * scale : 0.f;
    if (blockIdx.y < 2)
      splitValue<true>(x, hi, lo);  // q, k
    else
      splitValue<false>(x, hi, lo);  // v
    __half* dst = static_cast<__half*>(j.dst);
    dst[idx] = hi;
    dst[j.plane + idx] = lo;
  }
}

unsigned blocksFor(const SplitJobs& jobs, bool padded) {
  int64_t most = 0;
  for (const SplitJob& j : jobs.job) {
    const int64_t n = j.rows * (padded ? j.dstLen : j.copyLen);
    most = n > most ? n : most;
  }
  const int64_t want = (most + 4 * kThreads - 1) / (4 * kThreads);
  return unsigned(want < 1 ? 1 : want < 8192 ? want : 8192);
}

}  // namespace

cudaError_t splitRows(const SplitJobs& jobs, cudaStream_t st) {
  if (cudaError_t e = cudaMemsetAsync(jobs.maxBits, 0, 3 * sizeof(uint32_t), st); e != cudaSuccess) return e;
  absMaxKernel<<<dim3(blocksFor(jobs, false), 3), kThreads, 0, st>>>(jobs);
  splitRowsKernel<<<dim3(blocksFor(jobs, true), 3), kThreads, 0, st>>>(jobs);
  return cudaGetLastError();
}

}  // namespace fa
