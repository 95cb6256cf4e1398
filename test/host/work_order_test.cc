// Host-side test of the block order (cuda/work_order.h), built with the system C++ compiler by
// test/work-order.test.ts: every order must be a permutation of the items, and each must keep
// its promise (longest first; clusters contiguous and costliest first; hybrid's tail longest
// first; auto picking hybrid exactly when no cluster has more than kHybridMaxItems items).
//   work_order_test SEED   -> prints "ok <checks>" or the first failures, exit status 0 / 1
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <set>
#include <tuple>
#include <vector>

#include "work_order.h"

using namespace fa;

static int checks = 0, failures = 0;
#define CHECK(cond, ...)                         \
  do {                                           \
    ++checks;                                    \
    if (!(cond)) {                               \
      if (++failures <= 10) {                    \
        std::printf("FAIL line %d: ", __LINE__); \
        std::printf(__VA_ARGS__);                \
        std::printf("\n");                       \
      }                                          \
    }                                            \
  } while (0)

using Key = std::tuple<int, int, int, int>;  // b, hk, mBlock, split
static Key keyOf(const CostedItem& u) {
  return {u.w.b, u.w.hk, u.w.mBlock, u.w.split};
}

// A random plan: sequences with random query-block counts, kv heads, splits, causal-like costs.
static std::vector<CostedItem> randomItems(std::mt19937& rng, int maxBlocks) {
  std::uniform_int_distribution<int> nb(1, 6), nh(1, 4), ns(1, 3), nm(0, maxBlocks), coin(0, 1);
  const int batch = nb(rng), heads = nh(rng), splits = ns(rng);
  const bool causal = coin(rng);
  std::vector<CostedItem> items;
  for (int b = 0; b < batch; ++b) {
    const int mBlocks = nm(rng);
    for (int m = 0; m < mBlocks; ++m)
      for (int hk = 0; hk < heads; ++hk)
        for (int s = 0; s < splits; ++s) {
          const int tiles = causal ? 2 * (m + 1) : 2 * mBlocks;
          const int per = (tiles + splits - 1) / splits;
          const int cost = std::max(0, std::min(per, tiles - s * per));
          items.push_back(
              CostedItem{WorkItem{b * 1000, mBlocks * 128, b * 2000, 2 * mBlocks * 64, b, m, s, hk}, cost, 0});
        }
  }
  return items;
}

static int mostItemsPerCluster(const std::vector<CostedItem>& items) {
  std::map<std::pair<int, int>, int> n;
  int most = 0;
  for (const CostedItem& u : items) most = std::max(most, ++n[{u.w.b, u.w.hk}]);
  return most;
}

int main(int argc, char** argv) {
  const unsigned seed = argc > 1 ? unsigned(std::strtoul(argv[1], nullptr, 10)) : 1u;
  std::mt19937 rng(seed);
  CHECK(workOrderFromEnv(nullptr, WorkOrder::Auto) == WorkOrder::Auto, "unset -> default");
  CHECK(workOrderFromEnv("longest", WorkOrder::Auto) == WorkOrder::Longest, "longest");
  CHECK(workOrderFromEnv("clusters", WorkOrder::Auto) == WorkOrder::Clusters, "clusters");
  CHECK(workOrderFromEnv("hybrid", WorkOrder::Auto) == WorkOrder::Hybrid, "hybrid");
  CHECK(workOrderFromEnv("bogus", WorkOrder::Longest) == WorkOrder::Longest, "unknown -> default");

  for (int trial = 0; trial < 400; ++trial) {
    const std::vector<CostedItem> items = randomItems(rng, trial % 2 ? 8 : 40);
    const long long slots = 1 + trial % 13;
    std::multiset<Key> all;
    for (const CostedItem& u : items) all.insert(keyOf(u));
    std::map<WorkOrder, std::vector<CostedItem>> out;
    for (WorkOrder o : {WorkOrder::Longest, WorkOrder::Clusters, WorkOrder::Hybrid, WorkOrder::Auto}) {
      std::vector<CostedItem> v = items;
      orderItems(v, o, slots);
      std::multiset<Key> got;
      for (const CostedItem& u : v) got.insert(keyOf(u));
      CHECK(got == all, "seed %u trial %d order %d: not a permutation of the items", seed, trial, int(o));
      out[o] = v;
    }
    const auto& lo = out[WorkOrder::Longest];
    for (size_t i = 1; i < lo.size(); ++i)
      CHECK(lo[i - 1].cost >= lo[i].cost, "seed %u trial %d: longest first broken at %zu", seed, trial, i);

    const auto& cl = out[WorkOrder::Clusters];
    std::set<std::pair<int, int>> done;
    long long lastTotal = -1;
    for (size_t i = 0; i < cl.size(); ++i) {
      const std::pair<int, int> c{cl[i].w.b, cl[i].w.hk};
      const bool starts = i == 0 || std::pair<int, int>{cl[i - 1].w.b, cl[i - 1].w.hk} != c;
      if (starts) {
        CHECK(!done.count(c), "seed %u trial %d: cluster (%d, %d) is split", seed, trial, c.first, c.second);
        done.insert(c);
        CHECK(lastTotal < 0 || cl[i].clusterCost <= lastTotal, "seed %u trial %d: clusters not costliest first", seed,
              trial);
        lastTotal = cl[i].clusterCost;
      } else {
        CHECK(cl[i - 1].cost >= cl[i].cost, "seed %u trial %d: cluster not longest first inside", seed, trial);
      }
    }

    const auto& hy = out[WorkOrder::Hybrid];
    const size_t tail = size_t(std::min<long long>((long long)hy.size(), 2 * slots));
    for (size_t i = 0; i + tail < hy.size(); ++i)
      CHECK(keyOf(hy[i]) == keyOf(cl[i]), "seed %u trial %d: hybrid differs from clusters before its tail", seed,
            trial);
    for (size_t i = hy.size() - tail + 1; i < hy.size(); ++i)
      CHECK(hy[i - 1].cost >= hy[i].cost, "seed %u trial %d: hybrid tail not longest first", seed, trial);

    const auto& au = out[WorkOrder::Auto];
    const auto& want = mostItemsPerCluster(items) <= kHybridMaxItems ? hy : lo;
    bool same = au.size() == want.size();
    for (size_t i = 0; same && i < au.size(); ++i) same = keyOf(au[i]) == keyOf(want[i]);
    CHECK(same, "seed %u trial %d: auto did not pick %s", seed, trial,
          mostItemsPerCluster(items) <= kHybridMaxItems ? "hybrid" : "longest");
  }
  if (failures) {
    std::printf("%d of %d checks failed (seed %u)\n", failures, checks, seed);
    return 1;
  }
  std::printf("ok %d\n", checks);
  return 0;
}
