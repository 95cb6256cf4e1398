#include "forward.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "choose.h"
#include "fixup.h"
#include "host_clock.h"
#include "launch.h"
#include "plan_work.h"
#include "status.h"
#include "work_order.h"

namespace fa {

HostClock& hostClock() {
  static HostClock c;
  return c;
}

bool dependentLaunchSupported() {
  static const bool yes = [] {
    int dev = 0, major = 0;
    return cudaGetDevice(&dev) == cudaSuccess &&
           cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess && major >= 9;
  }();
  return yes;
}

void cacheRowsOf(const ForwardArgs& a, int* rows) {
  const int batch = int(a.cacheSeqlens.size());
  for (int b = 0; b < batch; ++b) {
    const int* table = a.paging + size_t(b) * a.maxBlocks;
    for (int r = a.cuSeqlensNew[b]; r < a.cuSeqlensNew[b + 1]; ++r) {
      const int pos = a.cacheSeqlens[b] + r - a.cuSeqlensNew[b], blk = pos / a.blockSize;
      rows[r] = table[blk] * a.blockSize + (pos - blk * a.blockSize);
    }
  }
}

bool pagedInPlace(const ForwardArgs& a) {
  return a.paged && a.dtype != DType::F32 && paddedDim(a.headDim) == a.headDim && paddedDim(a.headDimV) == a.headDimV;
}

Forward::~Forward() {
  for (void* t : temps_) cudaFreeAsync(t, stream_);
}

void* Forward::alloc(size_t bytes, std::string& err) {
  if (bytes == 0) bytes = 16;
  void* ptr = nullptr;
  cudaError_t e = cudaMallocAsync(&ptr, bytes, stream_);
  if (e != cudaSuccess) {
    err = cudaMessage(e, "cudaMallocAsync (attention temporaries)");
    return nullptr;
  }
  temps_.push_back(ptr);
  return ptr;
}

std::string Forward::prepare(ForwardArgs args, const Uploader& upload, PlanCache* cache, const Lender& lend) {
  a_ = std::move(args);  // (a KV call's block table is moved, not copied, when the caller moves it)
  const ForwardArgs& a = a_;
  std::string err;
  const int H = a.numHeads, Hk = a.numKvHeads, G = H / Hk;
  const int batch = int(a.cuSeqlensQ.size()) - 1;
  dPad_ = paddedDim(a.headDim);
  dvPad_ = paddedDim(a.headDimV);
  TileInfo ti{};
  // No sm_90a image for this device: the mma.sync kernel serves.
  const KernelChoice kernel =
      chooseKernel(a, [&](const KernelChoice& k) { return cachedTileInfo(k, &ti) == cudaSuccess; });
  if (kernel.tile != Tile::Wgmma) FA_TRY(cachedTileInfo(kernel, &ti), "configuring the attention kernel");
  const int sms = multiprocessors();
  if (sms <= 0) return "cudaDeviceGetAttribute (multiprocessors) failed";
  HostClock& clock = hostClock();
  clock.lap(kPartChoose);

  const int left = a.windowLeft < 0 ? kUnbounded : std::min(a.windowLeft, kUnbounded);
  const int right = a.windowRight < 0 ? kUnbounded : std::min(a.windowRight, kUnbounded);

  // The work list: from the cache when the plan inputs repeat, else planned and uploaded.
  const uint64_t key = cache ? planKey(a_, kernel, ti) : 0;
  const CachedPlan* plan = cache ? cache->find(key) : nullptr;
  const bool reused = plan != nullptr;
  if (!plan) {
    CachedPlan fresh;
    std::vector<unsigned char> meta;
    if (std::string e = planWork(a_, ti, sms, left, right, fresh, meta); !e.empty()) return e;
    fresh.key = key;
    if (cache) {
      if (std::string e = cache->store(fresh, meta.data(), upload, &plan); !e.empty()) return e;
    } else {
      unsigned char* dMeta = static_cast<unsigned char*>(alloc(fresh.bytes, err));
      if (!dMeta) return err;
      if (fresh.bytes)
        if (std::string e = upload(dMeta, meta.data(), fresh.bytes); !e.empty()) return e;
      fresh.meta = dMeta;
      ownPlan_ = fresh;
      plan = &ownPlan_;
    }
  }
  info_ = PlanInfo{kernel, plan->splits, plan->numWork, plan->blocksPerSm, reused};
  clock.lap(kPartPlan);
  const int splits = plan->splits;
  const size_t alibiBytes = sizeof(float) * a.alibiSlopes.size();
  unsigned char* dMeta = static_cast<unsigned char*>(plan->meta);
  const size_t offA = plan->offAlibi, offW = plan->offWork;

  const int64_t rowsQ = (int64_t)a.totalQ * H, rowsK = (int64_t)a.totalK * Hk;
  const bool gather = a.paged && !pagedInPlace(a);  // keys copied out of the cache first
  // A split call (float32 as float16 pairs) converts q, k and v into two planes each and writes float32
  // out itself (through a padded temporary only when dv is not a multiple of 8).
  const bool split = kernel.split;
  const size_t planes = split ? 2 : 1, outBytes = split ? 4 : 2;
  const bool convQK = a.dtype == DType::F32 || dPad_ != a.headDim || gather;
  const bool convV = a.dtype == DType::F32 || dvPad_ != a.headDimV || gather;
  const bool outTmp = (a.dtype == DType::F32 && !split) || dvPad_ != a.headDimV;
  qc_ = kc_ = vc_ = outTmp_ = nullptr;
  paging_ = nullptr;
  // A paged call's metadata, the paging array and then the write's cache rows: in lent page-locked
  // memory that the prologue kernel reads (copying the array to the device), or uploaded.
  const size_t metaInts = a.paged ? a.pagingInts + size_t(a.totalNew) : 0;
  int* lent = metaInts && lend ? static_cast<int*>(lend(sizeof(int) * metaInts)) : nullptr;
  std::vector<int> own;
  int* meta = lent;
  if (metaInts && !lent) {
    own.resize(metaInts);
    meta = own.data();
  }
  if (meta) {
    std::memcpy(meta, a.paging, sizeof(int) * a.pagingInts);
    cacheRowsOf(a, meta + a.pagingInts);
  }
  clock.lap(kPartPaging);
  // Every temporary of the call in one allocation (one cudaMallocAsync and one free per call, not up
  // to seven: a decode step's host time is mostly runtime calls), each part 256-byte aligned.
  size_t sizes[8] = {sizeof(int) * metaInts,
                     convQK ? size_t(rowsQ) * dPad_ * 2 * planes : 0,
                     convQK ? size_t(rowsK) * dPad_ * 2 * planes : 0,
                     convV ? size_t(rowsK) * dvPad_ * 2 * planes : 0,
                     outTmp ? size_t(rowsQ) * dvPad_ * outBytes : 0,
                     splits > 1 ? sizeof(float) * splits * size_t(rowsQ) * dvPad_ : 0,
                     splits > 1 ? sizeof(float) * splits * size_t(rowsQ) : 0,
                     split ? 4 * sizeof(uint32_t) : 0};
  size_t offs[8], total = 0;
  for (int i = 0; i < 8; ++i) {
    offs[i] = total;
    total += (sizes[i] + 255) & ~size_t(255);
  }
  char* slab = nullptr;
  if (total > 0 && !(slab = static_cast<char*>(alloc(total, err)))) return err;
  clock.lap(kPartAlloc);
  auto part = [&](int i) -> void* { return sizes[i] ? slab + offs[i] : nullptr; };
  paging_ = static_cast<int*>(part(0));
  qc_ = part(1);
  kc_ = part(2);
  vc_ = part(3);
  outTmp_ = part(4);
  splitMax_ = static_cast<uint32_t*>(part(7));
  pagingSrc_ = lent;
  writeRows_ = !a.totalNew ? nullptr : lent ? lent + a.pagingInts : paging_ + a.pagingInts;
  if (paging_ && !lent)
    if (std::string e = upload(paging_, meta, sizes[0]); !e.empty()) return e;
  clock.lap(kPartUpload);

  FwdParams& p = p_;
  p = FwdParams{};
  p.q = convQK ? qc_ : a.q;
  p.k = convQK ? kc_ : a.k;
  p.v = convV ? vc_ : a.v;
  p.out = outTmp ? outTmp_ : a.out;
  p.lse = a.lse;
  p.alibiSlopes = alibiBytes ? reinterpret_cast<const float*>(dMeta + offA) : nullptr;
  p.sinks = a.sinks.empty() ? nullptr : reinterpret_cast<const float*>(dMeta + plan->offSinks);
  p.work = reinterpret_cast<const WorkItem*>(dMeta + offW);
  const int dq = dPad_, dvq = dvPad_;
  p.qRowStride = (int64_t)H * dq;
  p.kRowStride = (int64_t)Hk * dq;
  p.vRowStride = (int64_t)Hk * dvq;
  p.qHeadStride = p.kHeadStride = dq;
  p.vHeadStride = dvq;
  p.oRowStride = (int64_t)H * (outTmp ? dvPad_ : a.headDimV);
  p.oHeadStride = outTmp ? dvPad_ : a.headDimV;
  p.numHeads = H;
  p.numKvHeads = Hk;
  p.group = G;
  p.d = dq;
  p.dv = dvq;
  p.totalQ = a.totalQ;
  p.windowLeft = left;
  p.windowRight = right;
  p.scaleLog2 = scaleLog2Of(a);
  p.softcapInv = softcapInvOf(a);
  p.softcapLog2 = float(double(a.softcap) * 1.4426950408889634);
  p.softcapInv2Log2 = a.softcap > 0 ? float(2 * double(a.softmaxScale) / a.softcap * 1.4426950408889634) : 0.f;
  p.lseFixedS = a.fixedSeqlenQ;
  p.numSplits = splits;
  p.numWork = plan->numWork;
  if (pagedInPlace(a)) {
    p.blockTable = paging_;
    p.maxBlocks = a.maxBlocks;
    p.blockSize = a.blockSize;
    p.blockShift = (a.blockSize & (a.blockSize - 1)) == 0 ? __builtin_ctz(unsigned(a.blockSize)) : -1;
  }
  if (a.paged) {  // the offsets of this call, whatever lengths the (cached) work list was planned with
    p.cuSeqlensK = paging_ + (size_t)batch * a.maxBlocks;
    p.cuSeqlensQ = paging_ + a.pagingInts - a.cuSeqlensQ.size();
  }
  if (split) {
    p.qPlane = rowsQ * dPad_;
    p.kPlane = rowsK * dPad_;
    p.vPlane = rowsK * dvPad_;
    p.splitMax = splitMax_;
  }
  p.oAccum = static_cast<float*>(part(5));
  p.lseAccum = static_cast<float*>(part(6));
  a_.paging = nullptr;  // the caller's memory, valid only until now (launch uses the device copy)
  clock.lap(kPartParams);
  return "";
}

std::string Forward::launch() {
  const ForwardArgs& a = a_;
  FwdParams& p = p_;
  const int H = a.numHeads, Hk = a.numKvHeads;
  const int64_t rowsQ = (int64_t)a.totalQ * H, rowsK = (int64_t)a.totalK * Hk;
  const KernelChoice& kernel = info_.kernel;
  const DType ct = kernel.computeType;
  if (a.poison && rowsQ > 0) {
    // 0xFF bytes are NaN in every dtype: an element no kernel writes shows up in the checks.
    FA_TRY(cudaMemsetAsync(a.out, 0xFF, rowsQ * a.headDimV * dtypeBytes(a.dtype), stream_), "poisoning out");
    if (a.lse) FA_TRY(cudaMemsetAsync(a.lse, 0xFF, rowsQ * sizeof(float), stream_), "poisoning lse");
    if (outTmp_)
      FA_TRY(cudaMemsetAsync(outTmp_, 0xFF, rowsQ * dvPad_ * (kernel.split ? 4 : 2), stream_), "poisoning out");
    if (p.oAccum)
      FA_TRY(cudaMemsetAsync(p.oAccum, 0xFF, sizeof(float) * p.numSplits * rowsQ * dvPad_, stream_), "poisoning");
    if (p.lseAccum)
      FA_TRY(cudaMemsetAsync(p.lseAccum, 0xFF, sizeof(float) * p.numSplits * rowsQ, stream_), "poisoning");
  }
  const int batch = int(a.cuSeqlensQ.size()) - 1;
  if (a.paged) {
    // The metadata and the write first, then every read of the cache (the gather below or the paged kernel).
    const PagedPrologue pro{pagingSrc_, paging_,        int(a.pagingInts), writeRows_,
                            a.totalNew, Hk * a.headDim, Hk * a.headDimV};
    FA_TRY(launchPrologue(a.dtype, a.kNew, a.vNew, const_cast<void*>(a.k), const_cast<void*>(a.v), pro, stream_),
           "launching the KV cache prologue");
  }
  HostClock& clock = hostClock();
  clock.lap(kPartWrite);
  // A paged call not read in place gathers its keys into the flat copies (kStart of the work
  // items counts from cuSeqlensK, as for a flat call).
  const PagedRows pr{
      paging_, paging_ ? paging_ + (size_t)batch * a.maxBlocks : nullptr, batch, a.maxBlocks, a.blockSize, Hk};
  const DType outT = kernel.split ? DType::F32 : ct;  // what the attention kernel and the combine write
  if (kernel.split) {
    const SplitJobs jobs{
        {{static_cast<const float*>(a.q), qc_, a.headDim, dPad_, a.headDim, rowsQ, p.qPlane},
         {static_cast<const float*>(a.k), kc_, a.headDim, dPad_, a.headDim, rowsK, p.kPlane, a.paged, pr},
         {static_cast<const float*>(a.v), vc_, a.headDimV, dvPad_, a.headDimV, rowsK, p.vPlane, a.paged, pr}},
        splitMax_};
    FA_TRY(splitRows(jobs, stream_), "converting q, k and v to float16 pairs");
  } else if (qc_ || kc_) {  // (q may have no rows: its part of the slab is then empty)
    FA_TRY(convertRows(a.dtype, a.q, a.headDim, ct, qc_, dPad_, a.headDim, rowsQ, stream_), "converting q");
    FA_TRY(a.paged ? gatherRows(a.dtype, a.k, a.headDim, ct, kc_, dPad_, rowsK, pr, stream_)
                   : convertRows(a.dtype, a.k, a.headDim, ct, kc_, dPad_, a.headDim, rowsK, stream_),
           "converting k");
  }
  if (vc_ && !kernel.split)
    FA_TRY(a.paged ? gatherRows(a.dtype, a.v, a.headDimV, ct, vc_, dvPad_, rowsK, pr, stream_)
                   : convertRows(a.dtype, a.v, a.headDimV, ct, vc_, dvPad_, a.headDimV, rowsK, stream_),
           "converting v");
  FA_TRY(runKernel(kernel, p, stream_), "launching the attention kernel");
  clock.lap(kPartKernel);
  void* out = outTmp_ ? outTmp_ : a.out;
  if (p.numSplits > 1)
    FA_TRY(combineSplits(outT, p.oAccum, p.lseAccum, p.numSplits, a.totalQ, H, dvPad_, out, p.oRowStride, p.oHeadStride,
                         a.lse, a.fixedSeqlenQ, p.sinks, stream_),
           "launching the split-KV combine");
  if (outTmp_)
    FA_TRY(convertRows(outT, outTmp_, dvPad_, a.dtype, a.out, a.headDimV, a.headDimV, rowsQ, stream_),
           "converting out");
  clock.lap(kPartCombine);

  // Last step, the non-finite-V fix-up (fixup.h): in a masked call, rows that cannot see a key the
  // kernel loaded for them got 0 * V of it, NaN when V is not finite there; the fix-up finds such
  // blocks and recomputes them into the final out and lse. Calls whose rows see every key of their
  // sequence launch nothing.
  info_.fixup = p.numWork > 0 && fixupNeeded(a.cuSeqlensQ, a.cuSeqlensK, p.windowLeft, p.windowRight);
  if (info_.fixup && kernel.split) {  // scanned and recomputed on the caller's float32 q, k and v
    FwdParams f = p;
    f.q = a.q;
    f.k = a.k;
    f.v = a.v;
    f.qRowStride = (int64_t)H * a.headDim;
    f.kRowStride = (int64_t)Hk * a.headDim;
    f.vRowStride = (int64_t)Hk * a.headDimV;
    f.qHeadStride = f.kHeadStride = a.headDim;
    f.vHeadStride = a.headDimV;
    f.d = a.headDim;
    f.dv = a.headDimV;
    if (a.paged) {  // the cache's own rows, through the block table (the kernel read gathered copies)
      f.blockTable = paging_;
      f.maxBlocks = a.maxBlocks;
      f.blockSize = a.blockSize;
      f.blockShift = (a.blockSize & (a.blockSize - 1)) == 0 ? __builtin_ctz(unsigned(a.blockSize)) : -1;
    }
    FA_TRY(launchFixup(f, DType::F32, kernel.tile, kernel.headDimClass, true, DType::F32, a.out, a.headDimV, stream_),
           "launching the non-finite V fix-up");
  } else if (info_.fixup) {
    FA_TRY(launchFixup(p, ct, kernel.tile, kernel.headDimClass, false, a.dtype, a.out, a.headDimV, stream_),
           "launching the non-finite V fix-up");
  }
  clock.lap(kPartFixup);
  return "";
}

}  // namespace fa
