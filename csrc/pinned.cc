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

// The JavaScript side's hold on a block; the finalizer drops it.
struct Hold {
  std::shared_ptr<PinnedBlock> block;
};

}  // namespace

PinnedBlock::~PinnedBlock() {
  for (auto& [stream, ev] : uses_) {
    cudaEventSynchronize(ev);  // the last copy on that stream has run
    cudaEventDestroy(ev);
  }
  cudaFreeHost(ptr_);
  liveBytes -= bytes_;
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
  char* p = nullptr;
  if (bytes > 0) {
    if (cudaError_t e = cudaMallocHost(&p, bytes); e != cudaSuccess) {
      cudaGetLastError();
      throw Napi::Error::New(env,
                             fa::cudaMessage(e, ("cudaMallocHost of " + std::to_string(bytes) + " bytes").c_str()));
    }
    std::memset(p, 0, bytes);
  }
  if (!p) return Napi::ArrayBuffer::New(env, 0);
  auto* hold = new Hold{std::make_shared<PinnedBlock>(p, bytes)};
  liveBytes += bytes;
  {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mu);
    r.byStart[reinterpret_cast<uintptr_t>(p)] = hold->block;
  }
  return Napi::ArrayBuffer::New(
      env, p, bytes,
      [](Napi::Env, void* data, Hold* h) {
        {
          Registry& r = registry();
          std::lock_guard<std::mutex> lock(r.mu);
          r.byStart.erase(reinterpret_cast<uintptr_t>(data));
        }
        delete h;  // the block goes once no queued copy holds it
      },
      hold);
}

}  // namespace addon
