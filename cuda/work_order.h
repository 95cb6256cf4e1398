// The order thread blocks start in (block i takes unit i of the list). Two goals pull apart:
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

struct Unit {
  WorkItem w;
  int cost;                // key tiles the unit visits
  long long clusterCost;   // filled by orderUnits: key tiles of the unit's (sequence, kv head)
};

enum class WorkOrder {
  Longest,    // longest first; ties: sequence, query block, split, kv head (v5's order)
  Clusters,   // (sequence, kv head) clusters, the costliest cluster first; longest first inside
  Hybrid,     // Clusters, then the last two waves re-sorted longest first
};

inline WorkOrder workOrderFromEnv(const char* s, WorkOrder dflt) {
  if (!s) return dflt;
  if (!std::strcmp(s, "longest")) return WorkOrder::Longest;
  if (!std::strcmp(s, "clusters")) return WorkOrder::Clusters;
  if (!std::strcmp(s, "hybrid")) return WorkOrder::Hybrid;
  return dflt;
}

// Sorts units in place; `slots` = blocks resident on the GPU at once (one wave).
inline void orderUnits(std::vector<Unit>& units, WorkOrder order, long long slots) {
  auto longest = [](const Unit& x, const Unit& y) {
    return std::make_tuple(-x.cost, x.w.b, x.w.mBlock, x.w.split, x.w.hk) <
           std::make_tuple(-y.cost, y.w.b, y.w.mBlock, y.w.split, y.w.hk);
  };
  if (order == WorkOrder::Longest) {
    std::sort(units.begin(), units.end(), longest);
    return;
  }
  std::map<std::pair<int, int>, long long> total;
  for (const Unit& u : units) total[{u.w.b, u.w.hk}] += u.cost;
  for (Unit& u : units) u.clusterCost = total[{u.w.b, u.w.hk}];
  std::sort(units.begin(), units.end(), [](const Unit& x, const Unit& y) {
    return std::make_tuple(-x.clusterCost, x.w.b, x.w.hk, -x.cost, x.w.mBlock, x.w.split) <
           std::make_tuple(-y.clusterCost, y.w.b, y.w.hk, -y.cost, y.w.mBlock, y.w.split);
  });
  if (order == WorkOrder::Hybrid) {
    const long long tail = std::min<long long>((long long)units.size(), 2 * slots);
    std::stable_sort(units.end() - tail, units.end(), [](const Unit& x, const Unit& y) { return x.cost > y.cost; });
  }
}

}  // namespace fa
