// The plain parameter block of one forward launch, and the tile geometry shared by the host
// planner and the kernel (so both agree on which key blocks a query block visits).
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define FA_HD __host__ __device__ __forceinline__
#else
#define FA_HD inline
#endif

namespace fa {

// Masks are written with finite bounds: an unbounded window side becomes kUnbounded, far
// beyond any supported sequence length (< kMaxSeqlen), so no branch on -1 is needed.
constexpr int kUnbounded = 1 << 29;
constexpr int kMaxSeqlen = 1 << 28;  // the engine rejects longer sequences (src/cuda/backend.ts MAX_SEQLEN)
static_assert(kUnbounded >= kMaxSeqlen, "an unbounded window side reaches every key from any diagonal");

// One thread block's share (a work item): sequence b, kv head hk, query-row block mBlock, key
// split `split`, with the sequence's offsets and lengths copied in (one 32-byte load per block
// instead of a load of the item and then dependent loads of cuSeqlens). Block i takes item i,
// so the host's order of the list is the order blocks start in.
struct alignas(16) WorkItem {
  int qStart, lq, kStart, lk;
  int b, mBlock, split, hk;
};

struct FwdParams {
  const void* q;
  const void* k;
  const void* v;
  void* out;                 // compute dtype, [totalQ][H][oHeadStride]; unused when numSplits > 1
  float* lse;                // final lse (nullable); unused when numSplits > 1
  float* oAccum;             // numSplits > 1: [split][totalQ*H][dv] float32 partial outputs
  float* lseAccum;           // numSplits > 1: [split][totalQ*H] partial lse
  const WorkItem* work;      // device, numWork items, one per block
  const float* alibiSlopes;  // device [H] or null
  const float* sinks;        // device [H] sink logits or null (applied where a row's softmax ends)
  int64_t qRowStride, kRowStride, vRowStride, oRowStride;  // elements between tokens
  int qHeadStride, kHeadStride, vHeadStride, oHeadStride;  // elements between heads
  int numHeads, numKvHeads, group;                         // group = numHeads / numKvHeads
  int d, dv;  // padded to multiples of 8, at most the kernel's head-dim class
  int totalQ;
  int windowLeft, windowRight;  // in [0, kUnbounded]
  float scaleLog2;              // softmaxScale * log2(e), used when softcap is off
  float softcapInv;             // softmaxScale / softcap; 0 = softcap off
  float softcapLog2;            // softcap * log2(e)
  float softcapInv2Log2;        // 2 * softcapInv * log2(e) (fwd_rows.cuh softcapScore)
  int lseFixedS;                // 0: packed lse [H][totalQ]; S: fixed lse [batch][H][S]
  int numSplits;
  int numWork;
  // A paged call (a KV cache): k and v are the cache's [numBlocks * blockSize] rows, and key j of
  // sequence b is row blockTable[b * maxBlocks + j / blockSize] * blockSize + j % blockSize
  // (keyRow below). Null for a flat call, whose key j is row kStart + j.
  const int* blockTable;
  int maxBlocks, blockSize;
  int blockShift;  // log2(blockSize) when it is a power of two, else -1
  // Device [batch + 1] offsets, or null. Set (a paged call): each block reads its sequence's offsets
  // and lengths here instead of its work item's, so one work list serves a decode loop's growing
  // sequences (plan_work.cu keys a paged call's plan on key tiles, not keys).
  const int* cuSeqlensQ;
  const int* cuSeqlensK;
  // float32 as float16 pairs (split.cuh): q, k and v hold the high planes, their low planes follow
  // qPlane / kPlane / vPlane elements later, and splitMax holds the float bits of each tensor's
  // largest finite |x| (q, k, v), from which both the conversion and the kernel take the scales.
  int64_t qPlane, kPlane, vPlane;
  const uint32_t* splitMax;
};

// Block i's work item, with its sequence's offsets and lengths from p.cuSeqlensQ/K when set.
FA_HD WorkItem workItem(const FwdParams& p, int i) {
  WorkItem w = p.work[i];
  if (p.cuSeqlensK) {
    w.qStart = p.cuSeqlensQ[w.b];
    w.lq = p.cuSeqlensQ[w.b + 1] - w.qStart;
    w.kStart = p.cuSeqlensK[w.b];
    w.lk = p.cuSeqlensK[w.b + 1] - w.kStart;
  }
  return w;
}

// The row of k/v that holds key j (0 <= j < lk) of work item w's sequence: the same addressing
// as the wasm engine's Flat and Paged rows (assembly/rows.ts).
template <bool kPaged>
FA_HD int64_t keyRow(const FwdParams& p, const WorkItem& w, int j) {
  if constexpr (!kPaged) {
    return (int64_t)w.kStart + j;
  } else {
    int blk, slot;
    if (p.blockShift >= 0) {
      blk = j >> p.blockShift;
      slot = j & (p.blockSize - 1);
    } else {
      blk = j / p.blockSize;
      slot = j - blk * p.blockSize;
    }
#if defined(__CUDA_ARCH__)
    const int id = __ldg(p.blockTable + (int64_t)w.b * p.maxBlocks + blk);
#else
    const int id = p.blockTable[(int64_t)w.b * p.maxBlocks + blk];
#endif
    return (int64_t)id * p.blockSize + slot;
  }
}

// Key blocks [nLo, nHi) that rows [mBlock*bm, ...) of a sequence (lq, lk) can see. Rows of a
// block are (query row, head in group) pairs: row r is query r / group. Empty: nLo == nHi.
FA_HD void keyBlockRange(int mBlock, int bm, int bn, int lq, int lk, int group, int left, int right, int& nLo,
                         int& nHi) {
  const int rowFirst = mBlock * bm;
  int rowLast = rowFirst + bm;
  if (rowLast > lq * group) rowLast = lq * group;
  const int iFirst = rowFirst / group, iLast = (rowLast - 1) / group;
  int lo = iFirst + lk - lq - left, hi = iLast + lk - lq + right + 1;
  if (lo < 0) lo = 0;
  if (hi > lk) hi = lk;
  if (hi <= lo) {
    nLo = nHi = 0;
    return;
  }
  nLo = lo / bn;
  nHi = (hi + bn - 1) / bn;
}

// The blocks split s of numSplits takes from [nLo, nHi).
FA_HD void splitRange(int nLo, int nHi, int split, int numSplits, int& sLo, int& sHi) {
  const int per = (nHi - nLo + numSplits - 1) / numSplits;
  sLo = nLo + split * per;
  sHi = sLo + per;
  if (sHi > nHi) sHi = nHi;
  if (sLo > sHi) sLo = sHi;
}

}  // namespace fa
