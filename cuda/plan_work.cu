#include "plan_work.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "params.h"
#include "work_order.h"

namespace fa {

// FlashAttention-2's rule: split the keys only when the blocks would not fill the GPU, and then
// into the smallest count whose last wave is nearly full; a count that leaves the per-split
// block count unchanged is skipped (it only adds combine work).
// Decode-like calls (the 16-row tile) are memory-bound with a tiny output, so their splits cost little
// (a float32 partial of a few rows): when their blocks already fill the GPU, the wave count still
// decides, since 1.3 waves leave a third of it idle for the last one (b128 x 32k keys on an H200:
// 1024 blocks, 792 slots). Such splits keep at least 4 key tiles each.
int chooseSplits(long long blocks, int slots, int maxKeyBlocks, bool small) {
  if (small && blocks >= 0.8 * slots && maxKeyBlocks >= 8) {
    const int maxSplits = std::min(128, maxKeyBlocks / 4);
    auto eff = [&](int s) {
      const double waves = double(blocks * s) / slots;
      return waves / std::ceil(waves);
    };
    double best = 0;
    for (int s = 1; s <= maxSplits; ++s) best = std::max(best, eff(s));
    for (int s = 1; s <= maxSplits; ++s)
      if (eff(s) >= 0.95 * best) return s;
    return 1;
  }
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

uint64_t planKey(const ForwardArgs& a, const KernelChoice& k, const TileInfo& ti) {
  KeyHasher h;
  h.bytes(a.cuSeqlensQ.data(), sizeof(int) * a.cuSeqlensQ.size());
  if (a.paged) {
    // A paged call's kernels read the offsets of the call itself (FwdParams::cuSeqlensK), so its work
    // list depends on the keys only through the tiles each sequence spans, which decide the split count and
    // the order: a decode loop's sequence replans once every bn steps, not at every step.
    for (size_t b = 0; b + 1 < a.cuSeqlensK.size(); ++b)
      h.value((a.cuSeqlensK[b + 1] - a.cuSeqlensK[b] + ti.bn - 1) / ti.bn);
    h.value(-1);
  } else {
    h.bytes(a.cuSeqlensK.data(), sizeof(int) * a.cuSeqlensK.size());
  }
  h.bytes(a.alibiSlopes.data(), sizeof(float) * a.alibiSlopes.size());
  h.bytes(a.sinks.data(), sizeof(float) * a.sinks.size());
  for (int x : {a.numHeads, a.numKvHeads, a.windowLeft, a.windowRight, a.forceSplits, int(a.order), k.headDimClass,
                int(k.tile), int(a.cuSeqlensQ.size()), int(a.alibiSlopes.size()), int(a.sinks.size()), ti.bm, ti.bn,
                ti.blocksPerSm, int(k.split)})
    h.value(x);
  return h.done();
}

std::string planWork(const ForwardArgs& a, const TileInfo& ti, int sms, int left, int right, CachedPlan& plan,
                     std::vector<unsigned char>& meta) {
  const int H = a.numHeads, Hk = a.numKvHeads, G = H / Hk;
  (void)H;
  const int batch = int(a.cuSeqlensQ.size()) - 1;
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
                                 : chooseSplits((long long)qblocks.size() * Hk, slots, maxKeyBlocks, ti.bm <= 16);
  // Work items: (query block, kv head, split), one thread block each, in the planned order.
  if ((long long)qblocks.size() * Hk * splits > 0x7fffffffLL) return "too many query blocks for one launch";
  std::vector<CostedItem> costed;
  costed.reserve(qblocks.size() * Hk * splits);
  for (const QBlock& qb : qblocks)
    for (int hk = 0; hk < Hk; ++hk)
      for (int s = 0; s < splits; ++s) {
        int lo = qb.lo, hi = qb.hi;
        if (splits > 1) splitRange(qb.lo, qb.hi, s, splits, lo, hi);
        const int q0 = a.cuSeqlensQ[qb.b], k0 = a.cuSeqlensK[qb.b];
        costed.push_back(CostedItem{
            WorkItem{q0, a.cuSeqlensQ[qb.b + 1] - q0, k0, a.cuSeqlensK[qb.b + 1] - k0, qb.b, qb.m, s, hk}, hi - lo, 0});
      }
  orderItems(costed, a.order, slots);
  std::vector<WorkItem> items(costed.size());
  for (size_t i = 0; i < costed.size(); ++i) items[i] = costed[i].w;

  // One upload for everything small: ALiBi slopes, sinks, work items.
  const size_t alibiBytes = sizeof(float) * a.alibiSlopes.size(), sinkBytes = sizeof(float) * a.sinks.size();
  size_t off = 0;
  const size_t offA = off;
  off += alibiBytes;
  const size_t offS = off;
  off += sinkBytes;
  off = (off + 31) & ~size_t(31);
  const size_t offW = off;
  off += sizeof(WorkItem) * items.size();
  meta.assign(off, 0);
  if (alibiBytes) std::memcpy(meta.data() + offA, a.alibiSlopes.data(), alibiBytes);
  if (sinkBytes) std::memcpy(meta.data() + offS, a.sinks.data(), sinkBytes);
  if (!items.empty()) std::memcpy(meta.data() + offW, items.data(), sizeof(WorkItem) * items.size());

  plan.splits = splits;
  plan.numWork = int(items.size());
  plan.blocksPerSm = ti.blocksPerSm;
  plan.offAlibi = offA;
  plan.offSinks = offS;
  plan.offWork = offW;
  plan.bytes = off;
  return "";
}

}  // namespace fa
