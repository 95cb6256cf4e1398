#include "plan_cache.h"

#include <algorithm>

#include "status.h"

namespace fa {

PlanCache::~PlanCache() {
  clear();
}

void PlanCache::clear() {
  for (CachedPlan& e : entries_) cudaFreeAsync(e.meta, stream_);
  entries_.clear();
}

const CachedPlan* PlanCache::find(uint64_t key) {
  auto it = std::find_if(entries_.begin(), entries_.end(), [key](const CachedPlan& e) { return e.key == key; });
  if (it == entries_.end()) return nullptr;
  std::rotate(it, it + 1, entries_.end());  // now the most recent
  return &entries_.back();
}

std::string PlanCache::store(CachedPlan plan, const void* meta,
                             const std::function<std::string(void* dst, const void* src, size_t bytes)>& copy,
                             const CachedPlan** out) {
  if (entries_.size() >= kEntries) {
    // In stream order: kernels enqueued before read the entry before it is freed.
    cudaFreeAsync(entries_.front().meta, stream_);
    entries_.erase(entries_.begin());
  }
  const size_t bytes = std::max<size_t>(plan.bytes, 16);
  FA_TRY(cudaMallocAsync(&plan.meta, bytes, stream_), "cudaMallocAsync (work list)");
  if (plan.bytes) {
    std::string err = copy(plan.meta, meta, plan.bytes);
    if (!err.empty()) {
      cudaFreeAsync(plan.meta, stream_);
      return err;
    }
  }
  entries_.push_back(plan);
  *out = &entries_.back();
  return "";
}

}  // namespace fa
