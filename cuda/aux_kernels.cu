#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "aux_kernels.h"
#include "cache_rows.cuh"
#include "convert.cuh"
#include "launch.h"

namespace fa {
namespace {

template <typename S, typename D>
__global__ void convertRowsKernel(const S* __restrict__ src, int srcLen, D* __restrict__ dst, int dstLen, int copyLen,
                                  int64_t n) {
  for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < n; idx += (int64_t)gridDim.x * blockDim.x) {
    const int64_t r = idx / dstLen;
    const int c = int(idx - r * dstLen);
    dst[idx] = c < copyLen ? fromF<D>(toF<S>(src[r * srcLen + c])) : fromF<D>(0.f);
  }
}

template <typename S, typename D>
cudaError_t convertAs(const void* src, int srcLen, void* dst, int dstLen, int copyLen, int64_t rows, cudaStream_t st) {
  const int64_t n = rows * dstLen;
  if (n == 0) return cudaSuccess;
  const int threads = 256;
  const int64_t want = (n + threads - 1) / threads;
  const unsigned blocks = (unsigned)(want < 65536 ? want : 65536);
  convertRowsKernel<S, D>
      <<<blocks, threads, 0, st>>>(static_cast<const S*>(src), srcLen, static_cast<D*>(dst), dstLen, copyLen, n);
  return cudaGetLastError();
}

template <typename S, typename D>
__global__ void gatherRowsKernel(const S* __restrict__ src, int srcLen, D* __restrict__ dst, int dstLen, int64_t n,
                                 PagedRows pr) {
  for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < n; idx += (int64_t)gridDim.x * blockDim.x) {
    const int64_t r = idx / dstLen;
    const int c = int(idx - r * dstLen);
    const int64_t t = r / pr.heads;
    const int h = int(r - t * pr.heads);
    dst[idx] = c < srcLen ? fromF<D>(toF<S>(src[(cacheRowOf(pr, t) * pr.heads + h) * srcLen + c])) : fromF<D>(0.f);
  }
}

template <typename S, typename D>
cudaError_t gatherAs(const void* src, int srcLen, void* dst, int dstLen, int64_t rows, const PagedRows& pr,
                     cudaStream_t st) {
  const int64_t n = rows * dstLen;
  if (n == 0) return cudaSuccess;
  const int64_t want = (n + 255) / 256;
  gatherRowsKernel<S, D><<<(unsigned)(want < 65536 ? want : 65536), 256, 0, st>>>(static_cast<const S*>(src), srcLen,
                                                                                  static_cast<D*>(dst), dstLen, n, pr);
  return cudaGetLastError();
}

// Blocks [0, copyBlocks) copy the paging array, 16 bytes a thread (src and dst are 16-byte aligned);
// the others write new rows, one block per row (grid-stride); E is the element's storage (2 or 4
// bytes), copied as is.
template <typename E>
__global__ void prologueKernel(const E* __restrict__ kNew, const E* __restrict__ vNew, E* __restrict__ kCache,
                               E* __restrict__ vCache, PagedPrologue p, int copyBlocks) {
  waitPriorGrid();  // (launch.h) the kernels before it, which may still read these cache rows
  allowNextGrid();
  if (int(blockIdx.x) < copyBlocks) {
    const int i = (blockIdx.x * blockDim.x + threadIdx.x) * 4;
    if (i + 4 <= p.ints)
      *reinterpret_cast<int4*>(p.dst + i) = *reinterpret_cast<const int4*>(p.src + i);
    else
      for (int j = i; j < p.ints; ++j) p.dst[j] = p.src[j];
    return;
  }
  for (int r = blockIdx.x - copyBlocks; r < p.totalNew; r += gridDim.x - copyBlocks) {
    const int64_t row = p.rows[r];
    for (int c = threadIdx.x; c < p.kElems; c += blockDim.x)
      kCache[row * p.kElems + c] = kNew[(int64_t)r * p.kElems + c];
    for (int c = threadIdx.x; c < p.vElems; c += blockDim.x)
      vCache[row * p.vElems + c] = vNew[(int64_t)r * p.vElems + c];
  }
}

// One warp per (token, head) row. Partials of splits that saw no key have lse -inf and weigh 0.
// A sink (sinks[h], a logit) joins the denominator as one more partial with no value row.
template <typename T>
__global__ void combineKernel(const float* __restrict__ oAccum, const float* __restrict__ lseAccum, int numSplits,
                              int totalQ, int H, int dv, T* __restrict__ out, int64_t oRowStride, int oHeadStride,
                              float* __restrict__ lse, int lseFixedS, const float* __restrict__ sinks) {
  __shared__ float weight[4][128];
  waitPriorGrid();  // (launch.h) the split partials
  allowNextGrid();
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t rows = (int64_t)totalQ * H;
  const int64_t row = (int64_t)blockIdx.x * 4 + warp;
  if (row >= rows) return;
  const int token = int(row / H), h = int(row - (int64_t)token * H);
  const float sink = sinks ? sinks[h] : -INFINITY;
  float mx = sink;
  for (int s = lane; s < numSplits; s += 32) mx = fmaxf(mx, lseAccum[s * rows + row]);
  for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
  const float mUse = mx == -INFINITY ? 0.f : mx;
  float sum = 0.f;
  for (int s = lane; s < numSplits; s += 32) sum += expf(lseAccum[s * rows + row] - mUse);
  for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  const bool empty = sum == 0.f;  // no split saw a key: out 0, lse the sink's (or -inf)
  if (sinks) sum += expf(sink - mUse);
  const float total = sum == 0.f ? -INFINITY : mUse + logf(sum);
  for (int s = lane; s < numSplits; s += 32) weight[warp][s] = empty ? 0.f : expf(lseAccum[s * rows + row] - total);
  __syncwarp();
  T* dst = out + (int64_t)token * oRowStride + (int64_t)h * oHeadStride;
  for (int c = lane; c < dv; c += 32) {
    float acc = 0.f;
    for (int s = 0; s < numSplits; ++s) acc += weight[warp][s] * oAccum[(s * rows + row) * dv + c];
    dst[c] = fromF<T>(empty ? 0.f : acc);
  }
  if (lse && lane == 0) {
    const int64_t at = lseFixedS > 0 ? (int64_t)((token / lseFixedS) * H + h) * lseFixedS + token % lseFixedS
                                     : (int64_t)h * totalQ + token;
    lse[at] = total;
  }
}

}  // namespace

cudaError_t convertRows(DType srcT, const void* src, int srcLen, DType dstT, void* dst, int dstLen, int copyLen,
                        int64_t rows, cudaStream_t st) {
  if (srcT == DType::F32 && dstT == DType::F16)
    return convertAs<float, __half>(src, srcLen, dst, dstLen, copyLen, rows, st);
  if (srcT == DType::F32 && dstT == DType::BF16)
    return convertAs<float, __nv_bfloat16>(src, srcLen, dst, dstLen, copyLen, rows, st);
  if (srcT == DType::F16 && dstT == DType::F16)
    return convertAs<__half, __half>(src, srcLen, dst, dstLen, copyLen, rows, st);
  if (srcT == DType::BF16 && dstT == DType::BF16)
    return convertAs<__nv_bfloat16, __nv_bfloat16>(src, srcLen, dst, dstLen, copyLen, rows, st);
  if (srcT == DType::F32 && dstT == DType::F32)
    return convertAs<float, float>(src, srcLen, dst, dstLen, copyLen, rows, st);
  if (srcT == DType::F16 && dstT == DType::F32)
    return convertAs<__half, float>(src, srcLen, dst, dstLen, copyLen, rows, st);
  if (srcT == DType::BF16 && dstT == DType::F32)
    return convertAs<__nv_bfloat16, float>(src, srcLen, dst, dstLen, copyLen, rows, st);
  return cudaErrorInvalidValue;
}

cudaError_t gatherRows(DType srcT, const void* src, int srcLen, DType dstT, void* dst, int dstLen, int64_t rows,
                       const PagedRows& pr, cudaStream_t st) {
  if (srcT == DType::F32 && dstT == DType::F16) return gatherAs<float, __half>(src, srcLen, dst, dstLen, rows, pr, st);
  if (srcT == DType::F32 && dstT == DType::BF16)
    return gatherAs<float, __nv_bfloat16>(src, srcLen, dst, dstLen, rows, pr, st);
  if (srcT == DType::F16 && dstT == DType::F16) return gatherAs<__half, __half>(src, srcLen, dst, dstLen, rows, pr, st);
  if (srcT == DType::BF16 && dstT == DType::BF16)
    return gatherAs<__nv_bfloat16, __nv_bfloat16>(src, srcLen, dst, dstLen, rows, pr, st);
  return cudaErrorInvalidValue;
}

cudaError_t launchPrologue(DType t, const void* kNew, const void* vNew, void* kCache, void* vCache,
                           const PagedPrologue& p, cudaStream_t st) {
  const int threads = 128;
  const int copyBlocks = p.src ? (p.ints + 4 * threads - 1) / (4 * threads) : 0;
  const int writeBlocks = p.totalNew <= 0 ? 0 : p.totalNew < 32768 ? p.totalNew : 32768;
  if (copyBlocks + writeBlocks == 0) return cudaSuccess;
  const dim3 grid(unsigned(copyBlocks + writeBlocks)), block(threads);
  if (t == DType::F32)
    return launchDependent(prologueKernel<uint32_t>, grid, block, 0, st, static_cast<const uint32_t*>(kNew),
                           static_cast<const uint32_t*>(vNew), static_cast<uint32_t*>(kCache),
                           static_cast<uint32_t*>(vCache), p, copyBlocks);
  return launchDependent(prologueKernel<uint16_t>, grid, block, 0, st, static_cast<const uint16_t*>(kNew),
                         static_cast<const uint16_t*>(vNew), static_cast<uint16_t*>(kCache),
                         static_cast<uint16_t*>(vCache), p, copyBlocks);
}

cudaError_t combineSplits(DType outT, const float* oAccum, const float* lseAccum, int numSplits, int totalQ,
                          int numHeads, int dv, void* out, int64_t oRowStride, int oHeadStride, float* lse,
                          int lseFixedS, const float* sinks, cudaStream_t st) {
  const int64_t rows = (int64_t)totalQ * numHeads;
  if (rows == 0) return cudaSuccess;
  if (numSplits > 128) return cudaErrorInvalidValue;
  const unsigned blocks = (unsigned)((rows + 3) / 4);
  if (outT == DType::F16)
    return launchDependent(combineKernel<__half>, dim3(blocks), dim3(128), 0, st, oAccum, lseAccum, numSplits, totalQ,
                           numHeads, dv, static_cast<__half*>(out), oRowStride, oHeadStride, lse, lseFixedS, sinks);
  if (outT == DType::BF16)
    return launchDependent(combineKernel<__nv_bfloat16>, dim3(blocks), dim3(128), 0, st, oAccum, lseAccum, numSplits,
                           totalQ, numHeads, dv, static_cast<__nv_bfloat16*>(out), oRowStride, oHeadStride, lse,
                           lseFixedS, sinks);
  if (outT == DType::F32)
    return launchDependent(combineKernel<float>, dim3(blocks), dim3(128), 0, st, oAccum, lseAccum, numSplits, totalQ,
                           numHeads, dv, static_cast<float*>(out), oRowStride, oHeadStride, lse, lseFixedS, sinks);
  return cudaErrorInvalidValue;
}

// One warp per (batch, position, head) row; lanes across dv.
template <typename T>
__global__ void mergeKernel(const __grid_constant__ MergeParts m, T* __restrict__ out, float* __restrict__ lse) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t rows = (int64_t)m.batch * m.seqlen * m.heads;
  const int64_t row = (int64_t)blockIdx.x * 4 + warp;  // (b, s, h), h fastest: out's order
  if (row >= rows) return;
  const int h = int(row % m.heads);
  const int64_t bs = row / m.heads;
  const int s = int(bs % m.seqlen), b = int(bs / m.seqlen);
  const int64_t li = ((int64_t)b * m.heads + h) * m.seqlen + s, oi = row * m.dv;
  float mx = -INFINITY;
  bool nan = false;
  for (int p = 0; p < m.numParts; ++p) {
    const float l = m.lse[p][li];
    nan |= l != l;
    mx = fmaxf(mx, l);
  }
  float total, w[kMaxMergeParts];
  if (nan) {
    total = NAN;
  } else if (mx == -INFINITY) {
    total = -INFINITY;
  } else if (mx == INFINITY) {
    int n = 0;
    for (int p = 0; p < m.numParts; ++p) n += m.lse[p][li] == INFINITY;
    for (int p = 0; p < m.numParts; ++p) w[p] = m.lse[p][li] == INFINITY ? 1.f / n : 0.f;
    total = INFINITY;
  } else {
    float sum = 0.f;
    for (int p = 0; p < m.numParts; ++p) sum += expf(m.lse[p][li] - mx);
    total = mx + logf(sum);
    for (int p = 0; p < m.numParts; ++p) w[p] = expf(m.lse[p][li] - total);
  }
  for (int c = lane; c < m.dv; c += 32) {
    float acc = 0.f;
    if (nan) {
      acc = NAN;
    } else if (total != -INFINITY) {
      for (int p = 0; p < m.numParts; ++p)  // as the host's: a part with lse -inf adds nothing
        if (m.lse[p][li] != -INFINITY && !(total == INFINITY && w[p] == 0.f))
          acc += w[p] * toF(static_cast<const T*>(m.out[p])[oi + c]);
    }
    out[oi + c] = fromF<T>(acc);
  }
  if (lane == 0) lse[li] = total;
}

cudaError_t mergeParts(DType outT, const MergeParts& parts, void* out, float* lse, cudaStream_t st) {
  const int64_t rows = (int64_t)parts.batch * parts.seqlen * parts.heads;
  if (rows == 0) return cudaSuccess;
  if (parts.numParts < 1 || parts.numParts > kMaxMergeParts) return cudaErrorInvalidValue;
  const int64_t blocks = (rows + 3) / 4;
  if (blocks > 0x7fffffffLL) return cudaErrorInvalidConfiguration;
  if (outT == DType::F32)
    mergeKernel<float><<<(unsigned)blocks, 128, 0, st>>>(parts, static_cast<float*>(out), lse);
  else if (outT == DType::F16)
    mergeKernel<__half><<<(unsigned)blocks, 128, 0, st>>>(parts, static_cast<__half*>(out), lse);
  else
    mergeKernel<__nv_bfloat16><<<(unsigned)blocks, 128, 0, st>>>(parts, static_cast<__nv_bfloat16*>(out), lse);
  return cudaGetLastError();
}

__global__ void trapKernel() {
  __trap();
}

cudaError_t launchTrap(cudaStream_t stream) {
  trapKernel<<<1, 1, 0, stream>>>();
  return cudaGetLastError();
}

}  // namespace fa
