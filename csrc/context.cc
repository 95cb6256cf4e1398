#include "context.h"

#include <cstring>

#include "async.h"

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

std::string Context::copyIn(void* dst, const void* src, size_t bytes) {
  for (size_t off = 0; off < bytes; off += Staging::kChunk) {
    const size_t n = bytes - off < Staging::kChunk ? bytes - off : Staging::kChunk;
    int slot;
    char* pin;
    if (std::string e = staging.acquire(&slot, &pin); !e.empty()) return e;
    std::memcpy(pin, static_cast<const char*>(src) + off, n);
    cudaError_t r = cudaMemcpyAsync(static_cast<char*>(dst) + off, pin, n, cudaMemcpyHostToDevice, stream);
    std::string e = r == cudaSuccess ? staging.mark(slot, stream) : fa::cudaMessage(r, "cudaMemcpyAsync (to the GPU)");
    staging.release(slot);
    if (!e.empty()) return e;
  }
  return "";
}

std::string Context::copyOut(void* dst, const void* src, size_t bytes) {
  // Chunk i goes device -> pinned while chunk i-1 goes pinned -> host. A kernel fault enqueued
  // before surfaces at the first wait, with its message.
  const size_t chunks = (bytes + Staging::kChunk - 1) / Staging::kChunk;
  auto range = [bytes](size_t c) {
    const size_t off = c * Staging::kChunk;
    return std::make_pair(off, bytes - off < Staging::kChunk ? bytes - off : Staging::kChunk);
  };
  int slots[2] = {-1, -1};
  char* pins[2] = {nullptr, nullptr};
  std::string err;
  for (size_t c = 0; err.empty() && c <= chunks; ++c) {
    if (c < chunks) {
      const auto [off, n] = range(c);
      int& slot = slots[c & 1];
      if ((err = staging.acquire(&slot, &pins[c & 1])).size()) break;
      cudaError_t r =
          cudaMemcpyAsync(pins[c & 1], static_cast<const char*>(src) + off, n, cudaMemcpyDeviceToHost, stream);
      err = r == cudaSuccess ? staging.mark(slot, stream) : fa::cudaMessage(r, "cudaMemcpyAsync (from the GPU)");
      if (!err.empty()) break;
    }
    if (c > 0) {
      const size_t prev = c - 1;
      const auto [off, n] = range(prev);
      int& slot = slots[prev & 1];
      err = staging.wait(slot);
      if (err.empty()) std::memcpy(static_cast<char*>(dst) + off, pins[prev & 1], n);
      staging.release(slot);
      slot = -1;
    }
  }
  for (int s : slots)
    if (s >= 0) staging.release(s);
  return err;
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
    return e == cudaSuccess ? "" : fa::cudaMessage(e, "the GPU work of this engine");
  });
}

}  // namespace addon
