// The order thread blocks start in (block i takes item i of the list). Two goals pull apart:
// longest first (the last wave then holds short blocks, not a long straggler) and locality
// (blocks that read the same K and V, the query blocks of one (sequence, kv head), running at
// the same time, so K/V tiles come from L2 instead of DRAM once per query block). Plain C++.
#pragma once
#include <algorithm>
#include <cstring>
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

// Sorts items in place; `slots` = blocks resident on the GPU at once (one wave). It runs on every
// call whose lengths are new (each step of a decode loop), so it sorts indices by flat keys, with
// the clusters' totals in an array: 768 decode items take a few microseconds, not 80 (std::map and
// tuples of whole items).
inline void orderItems(std::vector<CostedItem>& items, WorkOrder order, long long slots) {
  const size_t n = items.size();
  int nb = 0, nh = 0;
  for (const CostedItem& u : items) {
    nb = std::max(nb, u.w.b + 1);
    nh = std::max(nh, u.w.hk + 1);
  }
  std::vector<long long> total(size_t(nb) * nh, 0);  // cost and items of each (sequence, kv head) cluster
  std::vector<int> count(total.size(), 0);
  for (const CostedItem& u : items) {
    const size_t c = size_t(u.w.b) * nh + u.w.hk;
    total[c] += u.cost;
    count[c] += 1;
  }
  if (order == WorkOrder::Auto) {
    const int most = count.empty() ? 0 : *std::max_element(count.begin(), count.end());
    order = most <= kHybridMaxItems ? WorkOrder::Hybrid : WorkOrder::Longest;
  }
  // The sort key of each item: Longest (-cost, b, mBlock, split, hk); clusters (-clusterCost, b, hk,
  // -cost, mBlock, split). Every field of an item's identity is in both, so ties never depend on the sort.
  struct Key {
    long long k0;
    int k1, k2, k3, k4, k5;
  };
  std::vector<Key> keys(n);
  for (size_t i = 0; i < n; ++i) {
    CostedItem& u = items[i];
    u.clusterCost = total[size_t(u.w.b) * nh + u.w.hk];
    keys[i] = order == WorkOrder::Longest ? Key{-(long long)u.cost, u.w.b, u.w.mBlock, u.w.split, u.w.hk, 0}
                                          : Key{-u.clusterCost, u.w.b, u.w.hk, -u.cost, u.w.mBlock, u.w.split};
  }
  std::vector<unsigned> idx(n);
  for (size_t i = 0; i < n; ++i) idx[i] = unsigned(i);
  std::sort(idx.begin(), idx.end(), [&](unsigned x, unsigned y) {
    const Key &a = keys[x], &b = keys[y];
    if (a.k0 != b.k0) return a.k0 < b.k0;
    if (a.k1 != b.k1) return a.k1 < b.k1;
    if (a.k2 != b.k2) return a.k2 < b.k2;
    if (a.k3 != b.k3) return a.k3 < b.k3;
    if (a.k4 != b.k4) return a.k4 < b.k4;
    return a.k5 < b.k5;
  });
  if (order == WorkOrder::Hybrid) {  // the last two waves re-sorted longest first
    const long long tail = std::min<long long>((long long)n, 2 * slots);
    std::stable_sort(idx.end() - tail, idx.end(),
                     [&](unsigned x, unsigned y) { return items[x].cost > items[y].cost; });
  }
  std::vector<CostedItem> sorted(n);
  for (size_t i = 0; i < n; ++i) sorted[i] = items[idx[i]];
  items.swap(sorted);
}

}  // namespace fa
