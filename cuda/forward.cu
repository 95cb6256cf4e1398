#include "forward.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "fwd.h"
#include "work_order.h"

namespace fa {

std::string cudaMessage(cudaError_t e, const char* what) {
  return std::string(what) + " failed: " + cudaGetErrorName(e) + ": " + cudaGetErrorString(e);
}

#define FA_TRY(expr, what)                                   \
  do {                                                       \
    cudaError_t e_ = (expr);                                 \
    if (e_ != cudaSuccess) return cudaMessage(e_, what);     \
  } while (0)

namespace {

template <typename T>
cudaError_t dispatchRun(int cls, const FwdParams& p, Tile tile, cudaStream_t st) {
  if (tile == Tile::Wgmma) return cls == 64 ? runFwdWgmma<T, 64>(p, st) : runFwdWgmma<T, 128>(p, st);
  switch (cls) {
    case 64: return runFwd<T, 64>(p, tile, st);
    case 128: return runFwd<T, 128>(p, tile, st);
    default: return runFwd<T, 256>(p, tile, st);
  }
}

template <typename T>
cudaError_t dispatchInfo(int cls, Tile tile, TileInfo* ti) {
  if (tile == Tile::Wgmma) return cls == 64 ? wgmmaTileInfo<T, 64>(ti) : wgmmaTileInfo<T, 128>(ti);
  switch (cls) {
    case 64: return fwdTileInfo<T, 64>(tile, ti);
    case 128: return fwdTileInfo<T, 128>(tile, ti);
    default: return fwdTileInfo<T, 256>(tile, ti);
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
  auto eligible = [&](int s) {
    return s == 1 || (maxKeyBlocks + s - 1) / s != (maxKeyBlocks + s - 2) / (s - 1);
  };
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
  dPad_ = (a.headDim + 7) & ~7;
  dvPad_ = (a.headDimV + 7) & ~7;
  const int widest = std::max(dPad_, dvPad_);
  const int cls = widest <= 64 ? 64 : widest <= 128 ? 128 : 256;
  // float32 inputs are computed in float16 (10-bit mantissa, like the half engines' inputs).
  const DType ct = a.dtype == DType::BF16 ? DType::BF16 : DType::F16;
  Tile tile = a.forceTile == 1 || a.forceTile == 2 ? Tile(a.forceTile)
              : (long long)a.maxSeqlenQ * G <= 16 ? Tile::Small : Tile::Main;
  TileInfo ti{};
  auto info = [&](Tile t) {
    return ct == DType::BF16 ? dispatchInfo<__nv_bfloat16>(cls, t, &ti) : dispatchInfo<__half>(cls, t, &ti);
  };
  // The Hopper kernel takes the 128-row tile's fast path (head dims that fill the class 64 or
  // 128, no softcap, no ALiBi, positive scale) where it has an image for the device (sm_90);
  // FLASHATTN_CUDA_WGMMA=0 (a tuning knob) keeps the mma.sync kernel.
  const char* wgKnob = std::getenv("FLASHATTN_CUDA_WGMMA");
  const bool fast = (cls == 64 || cls == 128) && a.headDim == cls && a.headDimV == cls && a.softcap <= 0 &&
                    a.alibiSlopes.empty() && float(double(a.softmaxScale) * 1.4426950408889634) > 0.f;  // as fullPath() sees it
  if (tile == Tile::Main && a.forceTile != 1 && fast && !(wgKnob && !std::strcmp(wgKnob, "0"))) {
    if (info(Tile::Wgmma) == cudaSuccess)
      tile = Tile::Wgmma;
    else
      (void)cudaGetLastError();  // no sm_90a image for this device: the mma.sync kernel serves
  }
  if (tile != Tile::Wgmma) FA_TRY(info(tile), "configuring the attention kernel");
  int dev = 0, sms = 0;
  FA_TRY(cudaGetDevice(&dev), "cudaGetDevice");
  FA_TRY(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev), "cudaDeviceGetAttribute");

  const int left = a.windowLeft < 0 ? kUnbounded : std::min(a.windowLeft, kUnbounded);
  const int right = a.windowRight < 0 ? kUnbounded : std::min(a.windowRight, kUnbounded);

  // Query blocks of every sequence and the key blocks each visits.
  struct QBlock { int b, m, lo, hi; };
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
        units.push_back(Unit{WorkItem{q0, a.cuSeqlensQ[qb.b + 1] - q0, k0, a.cuSeqlensK[qb.b + 1] - k0, qb.b, qb.m, s, hk}, hi - lo, 0});
      }
  orderUnits(units, workOrderFromEnv(std::getenv("FLASHATTN_CUDA_ORDER"), WorkOrder::Auto), slots);
  std::vector<WorkItem> items(units.size());
  for (size_t i = 0; i < units.size(); ++i) items[i] = units[i].w;

  info_ = PlanInfo{cls, int(tile), splits, int(items.size()), ti.blocksPerSm, ct};

  // One upload for everything small: ALiBi slopes, work items.
  const size_t alibiBytes = sizeof(float) * a.alibiSlopes.size();
  size_t off = 0;
  const size_t offA = off; off += alibiBytes;
  off = (off + 31) & ~size_t(31);
  const size_t offW = off; off += sizeof(WorkItem) * items.size();
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
  const double log2e = 1.4426950408889634;
  p.scaleLog2 = float(double(a.softmaxScale) * log2e);
  p.softcapInv = a.softcap > 0 ? float(double(a.softmaxScale) / a.softcap) : 0.f;
  p.softcapLog2 = float(double(a.softcap) * log2e);
  p.lseFixedS = a.fixedSeqlenQ;
  p.numSplits = splits;
  p.numWork = int(items.size());
  // Output stores: direct 4-byte stores from registers (measured faster on an H100 than staging
  // O through shared memory, notes/cuda-kernel.md); FLASHATTN_CUDA_EPILOGUE=staged|direct is a
  // tuning knob, read per call.
  p.stagedOut = 0;
  if (const char* e = std::getenv("FLASHATTN_CUDA_EPILOGUE")) {
    if (!std::strcmp(e, "direct")) p.stagedOut = 0;
    if (!std::strcmp(e, "staged")) p.stagedOut = 1;
  }
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
  const DType ct = info_.computeType;
  if (a.poison && rowsQ > 0) {
    // 0xFF bytes are NaN in every dtype: an element no kernel writes shows up in the checks.
    FA_TRY(cudaMemsetAsync(a.out, 0xFF, rowsQ * a.headDimV * dtypeBytes(a.dtype), stream_), "poisoning out");
    if (a.lse) FA_TRY(cudaMemsetAsync(a.lse, 0xFF, rowsQ * sizeof(float), stream_), "poisoning lse");
    if (outTmp_) FA_TRY(cudaMemsetAsync(outTmp_, 0xFF, rowsQ * dvPad_ * 2, stream_), "poisoning out");
    if (p.oAccum) FA_TRY(cudaMemsetAsync(p.oAccum, 0xFF, sizeof(float) * p.numSplits * rowsQ * dvPad_, stream_), "poisoning");
    if (p.lseAccum) FA_TRY(cudaMemsetAsync(p.lseAccum, 0xFF, sizeof(float) * p.numSplits * rowsQ, stream_), "poisoning");
  }
  if (qc_) {
    FA_TRY(convertRows(a.dtype, a.q, a.headDim, ct, qc_, dPad_, a.headDim, rowsQ, stream_), "converting q");
    FA_TRY(convertRows(a.dtype, a.k, a.headDim, ct, kc_, dPad_, a.headDim, rowsK, stream_), "converting k");
  }
  if (vc_) FA_TRY(convertRows(a.dtype, a.v, a.headDimV, ct, vc_, dvPad_, a.headDimV, rowsK, stream_), "converting v");
  const Tile tile = Tile(info_.tile);
  FA_TRY(ct == DType::BF16 ? dispatchRun<__nv_bfloat16>(info_.headDimClass, p, tile, stream_)
                           : dispatchRun<__half>(info_.headDimClass, p, tile, stream_),
         "launching the attention kernel");
  void* out = outTmp_ ? outTmp_ : a.out;
  if (p.numSplits > 1)
    FA_TRY(combineSplits(ct, p.oAccum, p.lseAccum, p.numSplits, a.totalQ, H, dvPad_, out, p.oRowStride,
                         p.oHeadStride, a.lse, a.fixedSeqlenQ, stream_),
           "launching the split-KV combine");
  if (outTmp_)
    FA_TRY(convertRows(ct, outTmp_, dvPad_, a.dtype, a.out, a.headDimV, a.headDimV, rowsQ, stream_),
           "converting out");
  return "";
}

}  // namespace fa
