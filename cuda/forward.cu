#include "forward.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>
#include <utility>

#include "fixup.h"
#include "fwd.h"
#include "host_clock.h"
#include "launch.h"
#include "plan_work.h"
#include "status.h"
#include "work_order.h"

namespace fa {
namespace {

// Head dims are padded to multiples of 8 (16-byte rows); the padding is zeros.
int paddedDim(int d) {
  return (d + 7) & ~7;
}

// The kernel's scale and softcap parameters, computed once here for both the kernel choice and
// FwdParams, so the choice sees exactly what the kernel will.
float scaleLog2Of(const ForwardArgs& a) {
  return float(double(a.softmaxScale) * 1.4426950408889634);
}
float softcapInvOf(const ForwardArgs& a) {
  return a.softcap > 0 ? float(double(a.softmaxScale) / a.softcap) : 0.f;
}

// Which kernel instance serves a call; the only place that decides it (as llama.cpp's fattn.cu
// has one function say which kernel fits). The tile: forced, or 16 rows when the query rows times
// grouped heads are at most 16 (decode), else 128. The fast copy of the loop (kFull): head dims
// that fill the class once padded, no softcap, no ALiBi and a positive scale (fwd_kernel.cuh).
// The Hopper kernel takes the 128-row tile's fast copy when the head dims are 64 or 128 unpadded,
// no softcap was asked for, the wgmma knob is on and no tile was forced to 'main', and only where
// `hasImage` says it has an image for the device (sm_90); everything else runs on mma.sync.
KernelChoice chooseKernel(const ForwardArgs& a, const std::function<bool(const KernelChoice&)>& hasImage) {
  KernelChoice k;
  k.computeType = a.dtype == DType::BF16 ? DType::BF16 : DType::F16;
  if (exactFloat32(a)) {  // the rows kernel, on the work items of a tile's rows (16 for decode, else 128), no split
    k.exactF32 = true;
    k.headDimClass = 256;
    k.tile = (long long)a.maxSeqlenQ * (a.numHeads / a.numKvHeads) <= 16 ? Tile::Small : Tile::Main;
    return k;
  }
  const int d = paddedDim(a.headDim), dv = paddedDim(a.headDimV), widest = std::max(d, dv);
  const int cls = widest <= 64 ? 64 : widest <= 128 ? 128 : 256;
  k.headDimClass = cls;
  const bool forced = a.forceTile == int(Tile::Main) || a.forceTile == int(Tile::Small);
  k.tile = forced                                                        ? Tile(a.forceTile)
           : (long long)a.maxSeqlenQ * (a.numHeads / a.numKvHeads) <= 16 ? Tile::Small
                                                                         : Tile::Main;
  k.full = d == cls && dv == cls && softcapInvOf(a) == 0.f && a.alibiSlopes.empty() && scaleLog2Of(a) > 0.f;
  const bool hopper = k.tile == Tile::Main && a.forceTile != int(Tile::Main) && a.wgmma && k.full &&
                      (cls == 64 || cls == 128) && a.headDim == cls && a.headDimV == cls && a.softcap <= 0;
  if (hopper) {
    KernelChoice wg = k;
    wg.tile = Tile::Wgmma;
    if (hasImage(wg)) k = wg;
  }
  return k;
}

template <typename T>
cudaError_t dispatchRun(const KernelChoice& k, const FwdParams& p, cudaStream_t st) {
  if (k.tile == Tile::Wgmma) return k.headDimClass == 64 ? runFwdWgmma<T, 64>(p, st) : runFwdWgmma<T, 128>(p, st);
  switch (k.headDimClass) {
    case 64:
      return runFwd<T, 64>(p, k.tile, k.full, st);
    case 128:
      return runFwd<T, 128>(p, k.tile, k.full, st);
    default:
      return runFwd<T, 256>(p, k.tile, k.full, st);
  }
}

template <typename T>
cudaError_t dispatchInfo(const KernelChoice& k, TileInfo* ti) {
  if (k.tile == Tile::Wgmma) return k.headDimClass == 64 ? wgmmaTileInfo<T, 64>(ti) : wgmmaTileInfo<T, 128>(ti);
  switch (k.headDimClass) {
    case 64:
      return fwdTileInfo<T, 64>(k.tile, ti);
    case 128:
      return fwdTileInfo<T, 128>(k.tile, ti);
    default:
      return fwdTileInfo<T, 256>(k.tile, ti);
  }
}

// The tile configuration of a kernel choice (occupancy queries, shared-memory opt-in) costs a few
// CUDA runtime calls; it is the same for every call, so it is asked once per process and choice.
cudaError_t cachedTileInfo(const KernelChoice& k, TileInfo* ti) {
  static std::mutex mu;
  static std::map<std::tuple<int, int, int>, std::pair<cudaError_t, TileInfo>> known;
  const auto key = std::make_tuple(int(k.computeType), k.headDimClass, int(k.tile));
  std::lock_guard<std::mutex> lock(mu);
  auto it = known.find(key);
  if (it == known.end()) {
    TileInfo t{};
    cudaError_t e = k.computeType == DType::BF16 ? dispatchInfo<__nv_bfloat16>(k, &t) : dispatchInfo<__half>(k, &t);
    if (e != cudaSuccess) (void)cudaGetLastError();  // no image for this device: not sticky
    it = known.emplace(key, std::make_pair(e, t)).first;
  }
  *ti = it->second.second;
  return it->second.first;
}

int multiprocessors() {
  static const int sms = [] {
    int dev = 0, n = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev)) return 0;
    return n;
  }();
  return sms;
}

}  // namespace

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
  if (exactFloat32(a)) return a.paged;  // the rows kernel reads any row through the table
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

  // The work list: from the cache when the plan inputs repeat, else planned and uploaded. The rows
  // kernel (exact float32) covers a row's keys in one item: no split.
  const bool exact = kernel.exactF32;
  if (exact) a_.forceSplits = 1;
  rowsBm_ = ti.bm;
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
  // (The rows kernel reads and writes float32 rows of any width where they are.)
  const bool convQK = !exact && (a.dtype == DType::F32 || dPad_ != a.headDim || gather);
  const bool convV = !exact && (a.dtype == DType::F32 || dvPad_ != a.headDimV || gather);
  const bool outTmp = !exact && (a.dtype == DType::F32 || dvPad_ != a.headDimV);
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
  size_t sizes[7] = {sizeof(int) * metaInts,
                     convQK ? size_t(rowsQ) * dPad_ * 2 : 0,
                     convQK ? size_t(rowsK) * dPad_ * 2 : 0,
                     convV ? size_t(rowsK) * dvPad_ * 2 : 0,
                     outTmp ? size_t(rowsQ) * dvPad_ * 2 : 0,
                     splits > 1 ? sizeof(float) * splits * size_t(rowsQ) * dvPad_ : 0,
                     splits > 1 ? sizeof(float) * splits * size_t(rowsQ) : 0};
  size_t offs[7], total = 0;
  for (int i = 0; i < 7; ++i) {
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
  const int dq = exact ? a.headDim : dPad_, dvq = exact ? a.headDimV : dvPad_;  // the rows q, k, v are read as
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
    if (outTmp_) FA_TRY(cudaMemsetAsync(outTmp_, 0xFF, rowsQ * dvPad_ * 2, stream_), "poisoning out");
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
  if (kernel.exactF32) {  // float32 in float32: the rows kernel alone (no split, nothing hidden is loaded)
    info_.fixup = false;
    FA_TRY(launchRowsF32(p, rowsBm_, static_cast<float*>(a.out), a.headDimV, stream_),
           "launching the float32 attention");
    return "";
  }
  // A paged call not read in place gathers its keys into the flat copies (kStart of the work
  // items counts from cuSeqlensK, as for a flat call).
  const PagedRows pr{
      paging_, paging_ ? paging_ + (size_t)batch * a.maxBlocks : nullptr, batch, a.maxBlocks, a.blockSize, Hk};
  if (qc_ || kc_) {  // (q may have no rows: its part of the slab is then empty)
    FA_TRY(convertRows(a.dtype, a.q, a.headDim, ct, qc_, dPad_, a.headDim, rowsQ, stream_), "converting q");
    FA_TRY(a.paged ? gatherRows(a.dtype, a.k, a.headDim, ct, kc_, dPad_, rowsK, pr, stream_)
                   : convertRows(a.dtype, a.k, a.headDim, ct, kc_, dPad_, a.headDim, rowsK, stream_),
           "converting k");
  }
  if (vc_)
    FA_TRY(a.paged ? gatherRows(a.dtype, a.v, a.headDimV, ct, vc_, dvPad_, rowsK, pr, stream_)
                   : convertRows(a.dtype, a.v, a.headDimV, ct, vc_, dvPad_, a.headDimV, rowsK, stream_),
           "converting v");
  FA_TRY(ct == DType::BF16 ? dispatchRun<__nv_bfloat16>(kernel, p, stream_) : dispatchRun<__half>(kernel, p, stream_),
         "launching the attention kernel");
  clock.lap(kPartKernel);
  void* out = outTmp_ ? outTmp_ : a.out;
  if (p.numSplits > 1)
    FA_TRY(combineSplits(ct, p.oAccum, p.lseAccum, p.numSplits, a.totalQ, H, dvPad_, out, p.oRowStride, p.oHeadStride,
                         a.lse, a.fixedSeqlenQ, p.sinks, stream_),
           "launching the split-KV combine");
  if (outTmp_)
    FA_TRY(convertRows(ct, outTmp_, dvPad_, a.dtype, a.out, a.headDimV, a.headDimV, rowsQ, stream_), "converting out");
  clock.lap(kPartCombine);

  // Last step, the non-finite-V fix-up (fixup.h): in a masked call, rows that cannot see a key the
  // kernel loaded for them got 0 * V of it, NaN when V is not finite there; the fix-up finds such
  // blocks and recomputes them into the final out and lse. Calls whose rows see every key of their
  // sequence launch nothing.
  info_.fixup = p.numWork > 0 && fixupNeeded(a.cuSeqlensQ, a.cuSeqlensK, p.windowLeft, p.windowRight);
  if (info_.fixup)
    FA_TRY(launchFixup(p, ct, kernel.tile, kernel.headDimClass, a.dtype, a.out, a.headDimV, stream_),
           "launching the non-finite V fix-up");
  clock.lap(kPartFixup);
  return "";
}

}  // namespace fa
