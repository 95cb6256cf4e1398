#include "pinned.h"

#include <atomic>
#include <cstdint>
#include <cstring>
#include <map>

#include "status.h"

namespace addon {
namespace {

struct Registry {
  std::mutex mu;
  std::map<uintptr_t, std::weak_ptr<PinnedBlock>> byStart;
};
Registry& registry() {
  static Registry* r = new Registry();  // never destroyed: finalizers may run during shutdown
  return *r;
}
std::atomic<size_t> liveBytes{0};

// The JavaScript side's hold on a block; the finalizer drops it (or gives a result's block to the pool).
struct Hold {
  std::shared_ptr<PinnedBlock> block;
  size_t length;  // the ArrayBuffer's bytes (a pooled block may be larger)
  bool pooled;
};

// Blocks of collected results, kept for the next results (cudaMallocHost costs about a millisecond per
// 16 MB, and a fresh pageable array its first touch): at most kIdleBytes idle, and results take pinned
// memory only while at most kLiveBytes of them are alive (beyond that, plain arrays).
constexpr size_t kIdleBytes = size_t(512) << 20;
constexpr size_t kLiveBytes = size_t(4) << 30;
struct Pool {
  std::mutex mu;
  std::multimap<size_t, std::shared_ptr<PinnedBlock>> idle;  // by size
  size_t idleBytes = 0, liveResults = 0;
};
Pool& pool() {
  static Pool* p = new Pool();  // never destroyed, as the registry
  return *p;
}

void track(const std::shared_ptr<PinnedBlock>& b) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  r.byStart[reinterpret_cast<uintptr_t>(b->data())] = b;
}

void untrack(const void* data) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  r.byStart.erase(reinterpret_cast<uintptr_t>(data));
}

// An idle block of at least `bytes` and at most twice that, its queued copies waited for; or null.
std::shared_ptr<PinnedBlock> reuse(size_t bytes) {
  Pool& p = pool();
  std::shared_ptr<PinnedBlock> b;
  {
    std::lock_guard<std::mutex> lock(p.mu);
    auto it = p.idle.lower_bound(bytes);
    if (it == p.idle.end() || it->first > 2 * bytes) return nullptr;
    b = std::move(it->second);
    p.idle.erase(it);
    p.idleBytes -= b->bytes();
  }
  b->drain();
  return b;
}

Napi::Value arrayOf(Napi::Env env, std::shared_ptr<PinnedBlock> b, size_t bytes, bool pooled) {
  track(b);
  liveBytes += b->bytes();
  Napi::MemoryManagement::AdjustExternalMemory(env, int64_t(b->bytes()));
  char* data = b->data();
  auto* hold = new Hold{std::move(b), bytes, pooled};
  return Napi::ArrayBuffer::New(
      env, data, bytes,
      [](Napi::Env e, void* data, Hold* h) {
        untrack(data);
        const size_t n = h->block->bytes();
        liveBytes -= n;
        Napi::MemoryManagement::AdjustExternalMemory(e, -int64_t(n));
        if (h->pooled) {
          Pool& p = pool();
          std::lock_guard<std::mutex> lock(p.mu);
          p.liveResults -= n;
          if (p.idleBytes + n <= kIdleBytes && h->block.use_count() == 1) {
            p.idleBytes += n;
            p.idle.emplace(n, std::move(h->block));
          }
        }
        delete h;  // the block goes once no queued copy holds it (unless the pool kept it)
      },
      hold);
}

}  // namespace

void PinnedBlock::drain() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [stream, ev] : uses_) cudaEventSynchronize(ev);
}

void freeIdlePinned() {
  std::multimap<size_t, std::shared_ptr<PinnedBlock>> idle;
  Pool& p = pool();
  {
    std::lock_guard<std::mutex> lock(p.mu);
    idle.swap(p.idle);
    p.idleBytes = 0;
  }
}  // (the blocks are freed here, outside the lock)

PinnedBlock::~PinnedBlock() {
  for (auto& [stream, ev] : uses_) {
    cudaEventSynchronize(ev);  // the last copy on that stream has run
    cudaEventDestroy(ev);
  }
  cudaFreeHost(ptr_);
}

std::string PinnedBlock::used(cudaStream_t stream) {
  std::lock_guard<std::mutex> lock(mu_);
  cudaEvent_t ev = nullptr;
  for (auto& [s, e] : uses_)
    if (s == stream) ev = e;
  if (!ev) {
    FA_TRY(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming), "cudaEventCreate (pinned)");
    uses_.emplace_back(stream, ev);
  }
  FA_TRY(cudaEventRecord(ev, stream), "cudaEventRecord (pinned)");
  return "";
}

std::shared_ptr<PinnedBlock> pinnedBlockOf(const void* p, size_t bytes) {
  Registry& r = registry();
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  std::lock_guard<std::mutex> lock(r.mu);
  auto it = r.byStart.upper_bound(a);
  if (it == r.byStart.begin()) return nullptr;
  --it;
  std::shared_ptr<PinnedBlock> b = it->second.lock();
  if (!b || a + bytes > it->first + b->bytes()) return nullptr;
  return b;
}

size_t livePinnedBytes() {
  return liveBytes.load();
}

Napi::Value HostArray(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const double n = info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : -1;
  if (!(n >= 0) || n > 9007199254740991.0) throw Napi::TypeError::New(env, "Expected a byte count");
  const size_t bytes = size_t(n);
  const bool result = info[1].ToBoolean();
  if (bytes == 0) return Napi::ArrayBuffer::New(env, 0);
  if (result) {  // a call's result: from the pool, not zeroed (the copy fills it); undefined past the cap
    Pool& p = pool();
    {
      std::lock_guard<std::mutex> lock(p.mu);
      if (p.liveResults + bytes > kLiveBytes) return env.Undefined();
    }
    std::shared_ptr<PinnedBlock> b = reuse(bytes);
    if (!b) {
      char* ptr = nullptr;
      if (cudaMallocHost(&ptr, bytes) != cudaSuccess) {
        cudaGetLastError();
        return env.Undefined();  // no page-locked memory left: the caller takes a plain array
      }
      b = std::make_shared<PinnedBlock>(ptr, bytes);
    }
    {
      std::lock_guard<std::mutex> lock(p.mu);
      p.liveResults += b->bytes();
    }
    return arrayOf(env, std::move(b), bytes, true);
  }
  char* p = nullptr;
  if (cudaError_t e = cudaMallocHost(&p, bytes); e != cudaSuccess) {
    cudaGetLastError();
    throw Napi::Error::New(env, fa::cudaMessage(e, ("cudaMallocHost of " + std::to_string(bytes) + " bytes").c_str()));
  }
  std::memset(p, 0, bytes);
  return arrayOf(env, std::make_shared<PinnedBlock>(p, bytes), bytes, false);
}

}  // namespace addon
