// The host side of one attention call: plans the launch (kernel instance, split-KV count, work
// list in the planned order), owns the call's device temporaries, and enqueues
// conversion, attention, combine and fix-up kernels on a stream. Plain C++; no N-API types.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "aux_kernels.h"
#include "params.h"
#include "plan_cache.h"
#include "tile.h"
#include "work_order.h"

namespace fa {

struct ForwardArgs {
  DType dtype = DType::F16;                 // of q, k, v and out
  const void* q = nullptr;                  // device, [totalQ][numHeads][headDim], contiguous
  const void* k = nullptr;                  // device, [totalK][numKvHeads][headDim]
  const void* v = nullptr;                  // device, [totalK][numKvHeads][headDimV]
  void* out = nullptr;                      // device, [totalQ][numHeads][headDimV]
  float* lse = nullptr;                     // device or null; packed [H][totalQ] or fixed [batch][H][S]
  std::vector<int> cuSeqlensQ, cuSeqlensK;  // host, batch + 1 each
  int totalQ = 0, totalK = 0, maxSeqlenQ = 0;
  int numHeads = 1, numKvHeads = 1, headDim = 0, headDimV = 0;
  int windowLeft = -1, windowRight = -1;  // -1 = unbounded
  float softmaxScale = 1.f, softcap = 0.f;
  std::vector<float> alibiSlopes;  // empty = none
  std::vector<float> sinks;        // [numHeads] sink logits; empty = none
  int fixedSeqlenQ = 0;            // 0 = packed lse layout
  bool poison = false;             // fill outputs with 0xFF (NaN) first
  // float32 inputs: computed to float32 accuracy (as float16 pairs on the tensor cores, split.cuh),
  // unless the caller asked for precision 'float16' (converted to float16 and run on the half kernels).
  bool float32AsHalf = false;
  // The planner's choices forced, for benchmarks and for the tests that drive every kernel path
  // (the FLASHATTN_CUDA_* knobs: src/knobs.ts reads them once and the engine passes them per call).
  int forceSplits = 0;                // 0 = heuristic
  int forceTile = 0;                  // 0 = auto, else a Tile value (Tile::Wgmma counts as auto)
  bool wgmma = true;                  // false keeps the mma.sync kernel on sm_90
  WorkOrder order = WorkOrder::Auto;  // the order blocks start in (work_order.h)
  // A paged call (a KV cache): k and v are the cache's pools, [numBlocks * blockSize][numKvHeads]
  // rows; cuSeqlensK / totalK count each sequence's keys (cached + written), found through the
  // block table. Half caches with head dims that are multiples of 8 are read in place by the
  // kernel; float32 caches and other head dims are gathered into contiguous compute-type copies.
  bool paged = false;
  // The paging array as the kernels read it: [blockTable (batch x maxBlocks) | cuSeqlensK |
  // cuSeqlensNew | cacheSeqlens | cuSeqlensQ] (the write's arrays only with a write), host memory the
  // caller keeps valid until prepare() returns (csrc/args.h: the caller's packed Int32Array).
  const int* paging = nullptr;
  size_t pagingInts = 0;
  int maxBlocks = 0, blockSize = 0;
  int64_t poolRows = 0;  // numBlocks * blockSize: the rows of k and v
  // The call's write into the cache, enqueued first (every write of a call precedes its reads):
  // new row r of sequence b goes to position cacheSeqlens[b] + r - cuSeqlensNew[b]. Empty: none.
  std::vector<int> cuSeqlensNew, cacheSeqlens;
  const void* kNew = nullptr;  // device, [totalNew][numKvHeads][headDim]
  const void* vNew = nullptr;
  int totalNew = 0;
};

// Whether a call computes to float32 accuracy (float32 inputs without precision 'float16'): as
// float16 pairs on the tensor cores (KernelChoice::split, split.cuh).
inline bool exactFloat32(const ForwardArgs& a) {
  return a.dtype == DType::F32 && !a.float32AsHalf;
}

// Whether a paged call is read in place (else gathered first).
bool pagedInPlace(const ForwardArgs& a);

// The kernel instance a call runs. chooseKernel (forward.cu) is the one function that decides
// it: prepare() plans the call with its answer and launch() runs exactly that instance.
struct KernelChoice {
  DType computeType = DType::F16;  // the kernel's input type: float32 inputs are computed in float16
  int headDimClass = 0;            // 64, 128 or 256: the smallest that holds both padded head dims
  Tile tile = Tile::Main;          // tile.h
  bool full = false;               // the loop's fast copy (kFull in fwd_kernel.cuh and fwd_wgmma.cuh)
  bool split = false;              // float32 as float16 pairs (split.cuh) on the tensor cores, float32 out
};

struct PlanInfo {
  KernelChoice kernel;
  int splits = 1, numWork = 0, blocksPerSm = 0;
  bool planReused = false;  // the work list came from the PlanCache
  bool fixup = false;       // launch() ran the non-finite-V fix-up (fixup.h)
};

// Copies host bytes to the device in the call's stream order (the addon passes its pinned
// staging); returns an error message or "". The host bytes may be reused when it returns.
using Uploader = std::function<std::string(void* dst, const void* src, size_t bytes)>;

// Page-locked host memory that the call's kernels may read directly until the caller has enqueued
// its last launch (the addon lends a staging chunk, then marks it with the stream); nullptr when it
// has none that large (the bytes are uploaded instead).
using Lender = std::function<void*(size_t bytes)>;

// The cache row of each of a write's new rows (row r of sequence b goes to position cacheSeqlens[b]
// + r - cuSeqlensNew[b]), into rows[0 .. totalNew), from a paged call's block table.
void cacheRowsOf(const ForwardArgs& a, int* rows);

class Forward {
 public:
  explicit Forward(cudaStream_t stream) : stream_(stream) {}
  ~Forward();
  Forward(const Forward&) = delete;
  Forward& operator=(const Forward&) = delete;

  // Plans (or takes the plan from `cache`), allocates temporaries, uploads the work list, all in
  // stream order: nothing here waits for the GPU. Empty string on success.
  // A paged call's metadata goes into memory from `lend` when it can, which the first kernel (the
  // prologue, aux_kernels.h) copies to the device: no copy on the stream between the kernels.
  std::string prepare(ForwardArgs a, const Uploader& upload, PlanCache* cache = nullptr, const Lender& lend = nullptr);
  // Enqueues every kernel of the call; may be repeated (benchmarks).
  std::string launch();
  const PlanInfo& info() const { return info_; }

 private:
  void* alloc(size_t bytes, std::string& err);
  cudaStream_t stream_;
  ForwardArgs a_;
  PlanInfo info_;
  FwdParams p_{};
  std::vector<void*> temps_;
  CachedPlan ownPlan_;  // the work list of a call planned without a cache
  void* qc_ = nullptr;
  void* kc_ = nullptr;
  void* vc_ = nullptr;
  void* outTmp_ = nullptr;
  int* paging_ = nullptr;           // device: the paging array (ForwardArgs::paging), then the write's cache rows
  const int* pagingSrc_ = nullptr;  // lent host memory the prologue copies paging_ from, or null
  const int* writeRows_ = nullptr;  // the write's cache rows: lent host memory or the device copy
  int dPad_ = 0, dvPad_ = 0;
  uint32_t* splitMax_ = nullptr;  // a split call's maxima (FwdParams::splitMax)
};

}  // namespace fa
