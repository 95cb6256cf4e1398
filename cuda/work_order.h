// The order thread blocks start in (block i takes item i of the list). Two goals pull apart:
// longest first (the last wave then holds short blocks, not a long straggler) and locality
// (blocks that read the same K and V, the query blocks of one (sequence, kv head), running at
// the same time, so K/V tiles come from L2 instead of DRAM once per query block). Plain C++.
#pragma once
#include <algorithm>
#include <cstring>
#include <map>
#include <tuple>
#include <vector>

#include "params.h"

namespace fa {

struct CostedItem {
  WorkItem w;
  int cost;               // key tiles the item visits
  long long clusterCost;  // filled by orderItems: key tiles of the item's (sequence, kv head)
};

enum class WorkOrder {
  Longest,   // longest first; ties: sequence, query block, split, kv head (v5's order)
  Clusters,  // (sequence, kv head) clusters, the costliest cluster first; longest first inside
  Hybrid,    // Clusters, then the last two waves re-sorted longest first
  Auto,      // Hybrid when no cluster has more than kHybridMaxItems items, else Longest
};

// Measured on an H100 (notes/cuda-kernel.md, bf16, same call): Hybrid over Longest on causal
// shapes: +9% at 512 and 1024 tokens (4-8 query blocks a cluster), +2-5% at 2048 (16), -2 to
// -4% from 4096 up (32+); non-causal and decode shapes equal within 0.5%.
constexpr int kHybridMaxItems = 16;

// The order a value of FLASHATTN_CUDA_ORDER names (src/knobs.ts reads the variable once; the addon
// passes the value of each call's args here), or dflt for null or an unknown name.
inline WorkOrder workOrderFromEnv(const char* s, WorkOrder dflt) {
  if (!s) return dflt;
  if (!std::strcmp(s, "longest")) return WorkOrder::Longest;
  if (!std::strcmp(s, "clusters")) return WorkOrder::Clusters;
  if (!std::strcmp(s, "hybrid")) return WorkOrder::Hybrid;
  if (!std::strcmp(s, "auto")) return WorkOrder::Auto;
  return dflt;
}

// Sorts items in place; `slots` = blocks resident on the GPU at once (one wave).
inline void orderItems(std::vector<CostedItem>& items, WorkOrder order, long long slots) {
  auto longest = [](const CostedItem& x, const CostedItem& y) {
    return std::make_tuple(-x.cost, x.w.b, x.w.mBlock, x.w.split, x.w.hk) <
           std::make_tuple(-y.cost, y.w.b, y.w.mBlock, y.w.split, y.w.hk);
  };
  std::map<std::pair<int, int>, std::pair<long long, int>> total;  // cost and items of each cluster
  for (const CostedItem& u : items) {
    auto& t = total[{u.w.b, u.w.hk}];
    t.first += u.cost;
    t.second += 1;
  }
  if (order == WorkOrder::Auto) {
    int most = 0;
    for (const auto& kv : total) most = std::max(most, kv.second.second);
    order = most <= kHybridMaxItems ? WorkOrder::Hybrid : WorkOrder::Longest;
  }
  if (order == WorkOrder::Longest) {
    std::sort(items.begin(), items.end(), longest);
    return;
  }
  for (CostedItem& u : items) u.clusterCost = total[{u.w.b, u.w.hk}].first;
  std::sort(items.begin(), items.end(), [](const CostedItem& x, const CostedItem& y) {
    return std::make_tuple(-x.clusterCost, x.w.b, x.w.hk, -x.cost, x.w.mBlock, x.w.split) <
           std::make_tuple(-y.clusterCost, y.w.b, y.w.hk, -y.cost, y.w.mBlock, y.w.split);
  });
  if (order == WorkOrder::Hybrid) {
    const long long tail = std::min<long long>((long long)items.size(), 2 * slots);
    std::stable_sort(items.end() - tail, items.end(),
                     [](const CostedItem& x, const CostedItem& y) { return x.cost > y.cost; });
  }
}

}  // namespace fa
