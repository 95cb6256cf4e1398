#include "forward.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "fixup.h"
#include "fwd.h"
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

// FlashAttention-2's rule: split the keys only when the blocks would not fill the GPU, and then
// into the smallest count whose last wave is nearly full; a count that leaves the per-split
// block count unchanged is skipped (it only adds combine work).
int chooseSplits(long long blocks, int slots, int maxKeyBlocks) {
  if (blocks <= 0 || blocks >= 0.8 * slots || maxKeyBlocks < 2) return 1;
  const int maxSplits = std::min(128, maxKeyBlocks);
  std::vector<double> eff(maxSplits + 1, 0.0);
  double best = 0;
  auto eligible = [&](int s) { return s == 1 || (maxKeyBlocks + s - 1) / s != (maxKeyBlocks + s - 2) / (s - 1); };
  for (int s = 1; s <= maxSplits; ++s) {
    if (!eligible(s)) continue;
    const double waves = double(blocks * s) / slots;
    eff[s] = waves / std::ceil(waves);
    best = std::max(best, eff[s]);
  }
  for (int s = 1; s <= maxSplits; ++s)
    if (eligible(s) && eff[s] >= 0.85 * best) return s;
  return 1;
}

}  // namespace

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

std::string Forward::prepare(const ForwardArgs& a, const Uploader& upload) {
  a_ = a;
  std::string err;
  const int H = a.numHeads, Hk = a.numKvHeads, G = H / Hk;
  const int batch = int(a.cuSeqlensQ.size()) - 1;
  dPad_ = paddedDim(a.headDim);
  dvPad_ = paddedDim(a.headDimV);
  TileInfo ti{};
  auto tileInfo = [&ti](const KernelChoice& k) {
    return k.computeType == DType::BF16 ? dispatchInfo<__nv_bfloat16>(k, &ti) : dispatchInfo<__half>(k, &ti);
  };
  const KernelChoice kernel = chooseKernel(a, [&](const KernelChoice& k) {
    if (tileInfo(k) == cudaSuccess) return true;
    (void)cudaGetLastError();  // no sm_90a image for this device: the mma.sync kernel serves
    return false;
  });
  if (kernel.tile != Tile::Wgmma) FA_TRY(tileInfo(kernel), "configuring the attention kernel");
  int dev = 0, sms = 0;
  FA_TRY(cudaGetDevice(&dev), "cudaGetDevice");
  FA_TRY(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev), "cudaDeviceGetAttribute");

  const int left = a.windowLeft < 0 ? kUnbounded : std::min(a.windowLeft, kUnbounded);
  const int right = a.windowRight < 0 ? kUnbounded : std::min(a.windowRight, kUnbounded);

  // Query blocks of every sequence and the key blocks each visits.
  struct QBlock {
    int b, m, lo, hi;
  };
  std::vector<QBlock> qblocks;
  int maxKeyBlocks = 0;
  for (int b = 0; b < batch; ++b) {
    const int lq = a.cuSeqlensQ[b + 1] - a.cuSeqlensQ[b], lk = a.cuSeqlensK[b + 1] - a.cuSeqlensK[b];
    const int mBlocks = int(((long long)lq * G + ti.bm - 1) / ti.bm);
    for (int m = 0; m < mBlocks; ++m) {
      int lo, hi;
      keyBlockRange(m, ti.bm, ti.bn, lq, lk, G, left, right, lo, hi);
      qblocks.push_back(QBlock{b, m, lo, hi});
      maxKeyBlocks = std::max(maxKeyBlocks, hi - lo);
    }
  }
  const long long slots = (long long)sms * ti.blocksPerSm;
  int splits = a.forceSplits > 0 ? std::min({a.forceSplits, 128, std::max(maxKeyBlocks, 1)})
                                 : chooseSplits((long long)qblocks.size() * Hk, slots, maxKeyBlocks);
  // Work units: (query block, kv head, split), one thread block each, in the planned order.
  if ((long long)qblocks.size() * Hk * splits > 0x7fffffffLL) return "too many query blocks for one launch";
  std::vector<Unit> units;
  units.reserve(qblocks.size() * Hk * splits);
  for (const QBlock& qb : qblocks)
    for (int hk = 0; hk < Hk; ++hk)
      for (int s = 0; s < splits; ++s) {
        int lo = qb.lo, hi = qb.hi;
        if (splits > 1) splitRange(qb.lo, qb.hi, s, splits, lo, hi);
        const int q0 = a.cuSeqlensQ[qb.b], k0 = a.cuSeqlensK[qb.b];
        units.push_back(Unit{
            WorkItem{q0, a.cuSeqlensQ[qb.b + 1] - q0, k0, a.cuSeqlensK[qb.b + 1] - k0, qb.b, qb.m, s, hk}, hi - lo, 0});
      }
  orderUnits(units, a.order, slots);
  std::vector<WorkItem> items(units.size());
  for (size_t i = 0; i < units.size(); ++i) items[i] = units[i].w;

  info_ = PlanInfo{kernel, splits, int(items.size()), ti.blocksPerSm};

  // One upload for everything small: ALiBi slopes, work items.
  const size_t alibiBytes = sizeof(float) * a.alibiSlopes.size();
  size_t off = 0;
  const size_t offA = off;
  off += alibiBytes;
  off = (off + 31) & ~size_t(31);
  const size_t offW = off;
  off += sizeof(WorkItem) * items.size();
  std::vector<unsigned char> meta(off);
  if (alibiBytes) std::memcpy(meta.data() + offA, a.alibiSlopes.data(), alibiBytes);
  if (!items.empty()) std::memcpy(meta.data() + offW, items.data(), sizeof(WorkItem) * items.size());
  unsigned char* dMeta = static_cast<unsigned char*>(alloc(off, err));
  if (!dMeta) return err;
  FA_TRY(upload(dMeta, meta.data(), off), "uploading the work list");

  const int64_t rowsQ = (int64_t)a.totalQ * H, rowsK = (int64_t)a.totalK * Hk;
  const bool convQK = a.dtype == DType::F32 || dPad_ != a.headDim;
  const bool convV = a.dtype == DType::F32 || dvPad_ != a.headDimV;
  const bool outTmp = a.dtype == DType::F32 || dvPad_ != a.headDimV;
  qc_ = kc_ = vc_ = outTmp_ = nullptr;
  if (convQK) {
    if (!(qc_ = alloc(rowsQ * dPad_ * 2, err))) return err;
    if (!(kc_ = alloc(rowsK * dPad_ * 2, err))) return err;
  }
  if (convV && !(vc_ = alloc(rowsK * dvPad_ * 2, err))) return err;
  if (outTmp && !(outTmp_ = alloc(rowsQ * dvPad_ * 2, err))) return err;

  FwdParams& p = p_;
  p = FwdParams{};
  p.q = convQK ? qc_ : a.q;
  p.k = convQK ? kc_ : a.k;
  p.v = convV ? vc_ : a.v;
  p.out = outTmp ? outTmp_ : a.out;
  p.lse = a.lse;
  p.alibiSlopes = alibiBytes ? reinterpret_cast<const float*>(dMeta + offA) : nullptr;
  p.work = reinterpret_cast<const WorkItem*>(dMeta + offW);
  p.qRowStride = (int64_t)H * dPad_;
  p.kRowStride = (int64_t)Hk * dPad_;
  p.vRowStride = (int64_t)Hk * dvPad_;
  p.qHeadStride = p.kHeadStride = dPad_;
  p.vHeadStride = dvPad_;
  p.oRowStride = (int64_t)H * (outTmp ? dvPad_ : a.headDimV);
  p.oHeadStride = outTmp ? dvPad_ : a.headDimV;
  p.numHeads = H;
  p.numKvHeads = Hk;
  p.group = G;
  p.d = dPad_;
  p.dv = dvPad_;
  p.totalQ = a.totalQ;
  p.windowLeft = left;
  p.windowRight = right;
  p.scaleLog2 = scaleLog2Of(a);
  p.softcapInv = softcapInvOf(a);
  p.softcapLog2 = float(double(a.softcap) * 1.4426950408889634);
  p.lseFixedS = a.fixedSeqlenQ;
  p.numSplits = splits;
  p.numWork = int(items.size());
  if (splits > 1) {
    if (!(p.oAccum = static_cast<float*>(alloc(sizeof(float) * splits * rowsQ * dvPad_, err)))) return err;
    if (!(p.lseAccum = static_cast<float*>(alloc(sizeof(float) * splits * rowsQ, err)))) return err;
  }
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
  if (qc_) {
    FA_TRY(convertRows(a.dtype, a.q, a.headDim, ct, qc_, dPad_, a.headDim, rowsQ, stream_), "converting q");
    FA_TRY(convertRows(a.dtype, a.k, a.headDim, ct, kc_, dPad_, a.headDim, rowsK, stream_), "converting k");
  }
  if (vc_) FA_TRY(convertRows(a.dtype, a.v, a.headDimV, ct, vc_, dvPad_, a.headDimV, rowsK, stream_), "converting v");
  FA_TRY(ct == DType::BF16 ? dispatchRun<__nv_bfloat16>(kernel, p, stream_) : dispatchRun<__half>(kernel, p, stream_),
         "launching the attention kernel");
  void* out = outTmp_ ? outTmp_ : a.out;
  if (p.numSplits > 1)
    FA_TRY(combineSplits(ct, p.oAccum, p.lseAccum, p.numSplits, a.totalQ, H, dvPad_, out, p.oRowStride, p.oHeadStride,
                         a.lse, a.fixedSeqlenQ, stream_),
           "launching the split-KV combine");
  if (outTmp_)
    FA_TRY(convertRows(ct, outTmp_, dvPad_, a.dtype, a.out, a.headDimV, a.headDimV, rowsQ, stream_), "converting out");

  // Last step, the non-finite-V fix-up (fixup.h): in a masked call, rows that cannot see a key the
  // kernel loaded for them got 0 * V of it, NaN when V is not finite there; the fix-up finds such
  // blocks and recomputes them into the final out and lse. Calls whose rows see every key of their
  // sequence launch nothing.
  info_.fixup = p.numWork > 0 && fixupNeeded(a.cuSeqlensQ, a.cuSeqlensK, p.windowLeft, p.windowRight);
  if (info_.fixup)
    FA_TRY(launchFixup(p, ct, kernel.tile, kernel.headDimClass, a.dtype, a.out, a.headDimV, stream_),
           "launching the non-finite V fix-up");
  return "";
}

}  // namespace fa
