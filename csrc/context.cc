#include "context.h"

#include <cstring>

#include "async.h"
#include "copy_pool.h"
#include "pinned.h"

namespace addon {

std::string initDevice() {
  static std::once_flag once;
  static std::string err;
  std::call_once(once, [] {
    err = []() -> std::string {
      int count = 0;
      FA_TRY(cudaGetDeviceCount(&count), "cudaGetDeviceCount");
      if (count == 0) return "no CUDA device";
      FA_TRY(cudaSetDevice(0), "cudaSetDevice");
      // Keep up to 4 GiB of freed memory in the stream-ordered pool instead of returning it at every
      // synchronisation: outputs and temporaries of repeated calls then cost no allocation.
      cudaMemPool_t pool;
      FA_TRY(cudaDeviceGetDefaultMemPool(&pool, 0), "cudaDeviceGetDefaultMemPool");
      uint64_t keep = 4ull << 30;
      FA_TRY(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep), "cudaMemPoolSetAttribute");
      return "";
    }();
  });
  return err;
}

std::string Staging::init() {
  for (int i = 0; i < kCount; ++i) {
    char* p = nullptr;
    cudaEvent_t e = nullptr;
    FA_TRY(cudaMallocHost(&p, kChunk), "cudaMallocHost (staging)");
    buf_.push_back(p);
    FA_TRY(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreate");
    ev_.push_back(e);
    held_.push_back(false);
  }
  return "";
}

void Staging::free() {
  std::lock_guard<std::mutex> lock(mu_);
  for (char* p : buf_) cudaFreeHost(p);
  for (cudaEvent_t e : ev_) cudaEventDestroy(e);
  buf_.clear();
  ev_.clear();
  held_.clear();
  freed_.notify_all();
}

std::string Staging::acquire(int* slot, char** ptr) {
  cudaEvent_t e;
  {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      if (buf_.empty()) return "the engine was disposed";
      int i = 0;
      while (i < kCount && held_[(next_ + i) % kCount]) ++i;
      if (i < kCount) {
        *slot = (next_ + i) % kCount;
        break;
      }
      freed_.wait(lock);
    }
    next_ = (*slot + 1) % kCount;
    held_[*slot] = true;
    *ptr = buf_[*slot];
    e = ev_[*slot];
  }
  if (cudaError_t r = cudaEventSynchronize(e); r != cudaSuccess) {
    release(*slot);
    return fa::cudaMessage(r, "waiting for a staging buffer");
  }
  return "";
}

std::string Staging::mark(int slot, cudaStream_t stream) {
  FA_TRY(cudaEventRecord(ev_[slot], stream), "cudaEventRecord (staging)");
  return "";
}

std::string Staging::wait(int slot) {
  FA_TRY(cudaEventSynchronize(ev_[slot]), "the GPU work before this copy");
  return "";
}

void Staging::release(int slot) {
  std::lock_guard<std::mutex> lock(mu_);
  if (slot < int(held_.size())) held_[slot] = false;
  freed_.notify_one();
}

Context::~Context() {
  plans.reset();
  staging.free();
  if (stream) cudaStreamDestroy(stream);
}

namespace {
// The first error of a parallel copy (tasks run on several threads).
struct FirstError {
  std::mutex mu;
  std::string err;
  void set(std::string e) {
    std::lock_guard<std::mutex> lock(mu);
    if (err.empty()) err = std::move(e);
  }
  bool any() {
    std::lock_guard<std::mutex> lock(mu);
    return !err.empty();
  }
};
size_t chunkCount(size_t bytes) {
  return (bytes + Staging::kChunk - 1) / Staging::kChunk;
}
size_t chunkBytes(size_t bytes, size_t c) {
  const size_t off = c * Staging::kChunk;
  return bytes - off < Staging::kChunk ? bytes - off : Staging::kChunk;
}
}  // namespace

// Each 4 MiB chunk: a staging buffer (once its last copy has run), memcpy into it, its copy to the
// GPU enqueued. Chunks go side by side on copyThreads() threads (copy_pool.h), so the memcpys keep
// up with the link; the copies are enqueued before this returns, so the next work on the stream
// (the call's kernels) follows all of them.
std::string Context::copyIn(void* dst, const void* src, size_t bytes) {
  if (std::shared_ptr<PinnedBlock> b = bytes ? pinnedBlockOf(src, bytes) : nullptr) {  // engine.hostTensor: one DMA
    FA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream), "cudaMemcpyAsync (to the GPU)");
    return b->used(stream);
  }
  FirstError fe;
  parallelFor(chunkCount(bytes), [&](size_t c) {
    if (fe.any()) return;
    const size_t off = c * Staging::kChunk, n = chunkBytes(bytes, c);
    int slot;
    char* pin;
    if (std::string e = staging.acquire(&slot, &pin); !e.empty()) return fe.set(e);
    std::memcpy(pin, static_cast<const char*>(src) + off, n);
    cudaError_t r = cudaMemcpyAsync(static_cast<char*>(dst) + off, pin, n, cudaMemcpyHostToDevice, stream);
    std::string e = r == cudaSuccess ? staging.mark(slot, stream) : fa::cudaMessage(r, "cudaMemcpyAsync (to the GPU)");
    staging.release(slot);
    if (!e.empty()) fe.set(e);
  });
  return fe.err;
}

// Each chunk on its own thread: its copy from the GPU into a staging buffer enqueued (after the
// work before it on the stream), waited for, then memcpy to `dst`; the threads' copies overlap
// each other's memcpys. A kernel fault enqueued before surfaces at the first wait, with its message.
std::string Context::copyOut(void* dst, const void* src, size_t bytes) {
  if (std::shared_ptr<PinnedBlock> b = bytes ? pinnedBlockOf(dst, bytes) : nullptr) {  // straight into the array
    FA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream), "cudaMemcpyAsync (from the GPU)");
    if (std::string e = b->used(stream); !e.empty()) return e;
    cudaEvent_t done;
    FA_TRY(cudaEventCreateWithFlags(&done, cudaEventDisableTiming), "cudaEventCreate");
    cudaError_t r = cudaEventRecord(done, stream);
    if (r == cudaSuccess) r = cudaEventSynchronize(done);
    cudaEventDestroy(done);
    return r == cudaSuccess ? "" : fa::cudaMessage(r, "the GPU work before this copy");
  }
  FirstError fe;
  parallelFor(chunkCount(bytes), [&](size_t c) {
    if (fe.any()) return;
    const size_t off = c * Staging::kChunk, n = chunkBytes(bytes, c);
    int slot;
    char* pin;
    if (std::string e = staging.acquire(&slot, &pin); !e.empty()) return fe.set(e);
    cudaError_t r = cudaMemcpyAsync(pin, static_cast<const char*>(src) + off, n, cudaMemcpyDeviceToHost, stream);
    std::string e =
        r == cudaSuccess ? staging.mark(slot, stream) : fa::cudaMessage(r, "cudaMemcpyAsync (from the GPU)");
    if (e.empty()) e = staging.wait(slot);
    if (e.empty()) std::memcpy(static_cast<char*>(dst) + off, pin, n);
    staging.release(slot);
    if (!e.empty()) fe.set(e);
  });
  return fe.err;
}

namespace {
struct ContextClass {
  Napi::FunctionReference ctor;
};
ContextClass* contextClass = nullptr;
}  // namespace

void ContextHandle::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function f = DefineClass(
      env, "Context",
      {InstanceMethod<&ContextHandle::Synchronize>("synchronize"), InstanceMethod<&ContextHandle::Dispose>("dispose")});
  contextClass = new ContextClass{Napi::Persistent(f)};
  exports.Set("Context", f);
}

ContextHandle::ContextHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ContextHandle>(info) {
  Napi::Env env = info.Env();
  std::string err = initDevice();
  auto c = std::make_shared<Context>();
  if (err.empty()) {
    cudaError_t e = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking);
    if (e != cudaSuccess) err = fa::cudaMessage(e, "cudaStreamCreate");
  }
  if (err.empty()) err = c->staging.init();
  if (!err.empty()) throw Napi::Error::New(env, err);
  c->plans = std::make_unique<fa::PlanCache>(c->stream);
  ctx = std::move(c);
}

std::shared_ptr<Context> ContextHandle::From(const Napi::Value& v) {
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(contextClass->ctor.Value()))
    throw Napi::TypeError::New(v.Env(), "Expected a flashattn CUDA context");
  std::shared_ptr<Context> c = Unwrap(v.As<Napi::Object>())->ctx;
  if (!c || c->disposed) throw Napi::Error::New(v.Env(), "the engine was disposed");
  return c;
}

Napi::Value ContextHandle::Synchronize(const Napi::CallbackInfo& info) {
  if (!ctx || ctx->disposed) throw Napi::Error::New(info.Env(), "the engine was disposed");
  return queueWait(info.Env(), ctx, "flashattn:synchronize", [c = ctx]() -> std::string {
    FA_TRY(cudaStreamSynchronize(c->stream), "the GPU work of this engine");
    return "";
  });
}

// Waits for the stream, then frees the staging and the work-list cache. Device buffers still
// alive keep the stream until they go.
Napi::Value ContextHandle::Dispose(const Napi::CallbackInfo& info) {
  if (!ctx || ctx->disposed) return queueWait(info.Env(), nullptr, "flashattn:dispose", [] { return std::string(); });
  ctx->disposed = true;
  std::shared_ptr<Context> c = std::move(ctx);
  return queueWait(info.Env(), c, "flashattn:dispose", [c]() -> std::string {
    cudaError_t e = cudaStreamSynchronize(c->stream);
    c->plans->clear();
    cudaStreamSynchronize(c->stream);
    c->staging.free();
    freeIdlePinned();  // the pool of results' blocks is the process's, a cache: refilled on use
    return e == cudaSuccess ? "" : fa::cudaMessage(e, "the GPU work of this engine");
  });
}

}  // namespace addon
