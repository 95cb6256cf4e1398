// Small kernels around the attention kernel: dtype conversion with head-dim padding, and the
// split-KV combine. Host launchers only; no N-API types.
#pragma once
#include <cuda_runtime.h>
#include <cstdint>

namespace fa {

enum class DType : int { F32 = 0, F16 = 1, BF16 = 2 };

inline int dtypeBytes(DType t) {
  return t == DType::F32 ? 4 : 2;
}

// dst[r][c] = c < copyLen ? convert(src[r][c]) : 0 for c < dstLen, r < rows.
cudaError_t convertRows(DType srcT, const void* src, int srcLen, DType dstT, void* dst, int dstLen, int copyLen,
                        int64_t rows, cudaStream_t stream);

// Where the keys of a paged call live (a KV cache): table [batch][maxBlocks] and cuSeqlensK
// [batch + 1] on the device; key j of sequence b is cache row table[b][j / blockSize] *
// blockSize + j % blockSize, and each cache row holds `heads` rows of the call (one per kv head).
struct PagedRows {
  const int* table;
  const int* cuSeqlensK;
  int batch, maxBlocks, blockSize, heads;
};

// As convertRows with copyLen = srcLen, but dst row r = t * heads + h (key t of the sequences
// laid end to end, kv head h) comes from the cache row that holds key t (PagedRows).
cudaError_t gatherRows(DType srcT, const void* src, int srcLen, DType dstT, void* dst, int dstLen, int64_t rows,
                       const PagedRows& pr, cudaStream_t stream);

// A float32 call's q, k and v as float16 pairs (split.cuh, split_rows.cu): job[i] (q, k, v) is
// rows x copyLen float32 values at srcLen per row, written as dst (rows x dstLen, zero-padded past
// copyLen) holding the high plane and dst + plane the low plane; maxBits [3] (device) receives
// each tensor's largest finite |x| (of the rows read), from which the conversion and the attention kernel
// take the scales.
struct SplitJob {
  const float* src;
  void* dst;  // float16
  int srcLen, dstLen, copyLen;
  int64_t rows, plane;
  bool paged = false;  // rows are gathered from a KV cache's pool through pr (as gatherRows)
  PagedRows pr{};
};
struct SplitJobs {
  SplitJob job[3];
  uint32_t* maxBits;
};
cudaError_t splitRows(const SplitJobs& jobs, cudaStream_t stream);

// The first kernel of a paged call (a KV cache), before every read of the cache: copies the paging
// array from lent page-locked host memory to the device (src null: it is there already) and writes
// the call's new rows, row r to cache row rows[r] (kElems elements of kNew, vElems of vNew; rows may
// be host or device memory). So the metadata crosses the link inside a kernel, not as a copy on the
// stream that the kernels around it would wait for.
struct PagedPrologue {
  const int* src;
  int* dst;
  int ints;
  const int* rows;
  int totalNew, kElems, vElems;
};
cudaError_t launchPrologue(DType t, const void* kNew, const void* vNew, void* kCache, void* vCache,
                           const PagedPrologue& p, cudaStream_t stream);

// Merges numSplits partial results (oAccum [split][totalQ*H][dv], lseAccum [split][totalQ*H])
// into out (outT, rows at oRowStride per token and oHeadStride per head) and lse (nullable);
// sinks: device [numHeads] sink logits joining each row's denominator, or null.
cudaError_t combineSplits(DType outT, const float* oAccum, const float* lseAccum, int numSplits, int totalQ,
                          int numHeads, int dv, void* out, int64_t oRowStride, int oHeadStride, float* lse,
                          int lseFixedS, const float* sinks, cudaStream_t stream);

// mergeAttention on device tensors: parts p < numParts of out [batch][seqlen][heads][dv] (outT) and
// lse [batch][heads][seqlen] (float32; packed results are batch 1, seqlen totalQ) merged into out and
// lse: lse = log(sum_p exp(lse_p)), out = sum_p exp(lse_p - lse) out_p, in float32; every lse -inf:
// out 0, lse -inf; a NaN lse: NaN; some lse +inf: lse +inf and out the mean of those parts' outs.
constexpr int kMaxMergeParts = 64;
struct MergeParts {
  const void* out[kMaxMergeParts];
  const float* lse[kMaxMergeParts];
  int numParts, batch, seqlen, heads, dv;
};
cudaError_t mergeParts(DType outT, const MergeParts& parts, void* out, float* lse, cudaStream_t stream);

// A kernel that traps: the tests' way to make a call fault on the GPU (a fault must surface as a
// JavaScript error at the next wait, never abort the process).
cudaError_t launchTrap(cudaStream_t stream);

}  // namespace fa
