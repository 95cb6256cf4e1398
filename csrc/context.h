// One engine's GPU context: its stream (every call of the engine is enqueued on it, in the order
// JavaScript made them), its pinned staging for host<->device copies and its cache of work lists.
// Engines have a context each, so two engines never wait on each other's lock: there is none.
// A context lives as long as its JavaScript handle or any device buffer made on it (buffers are
// freed in its stream order); dispose() frees the staging and the cache at once.
#pragma once
#include <cuda_runtime.h>
#include <napi.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "forward.h"
#include "plan_cache.h"
#include "status.h"

namespace addon {

// Process-wide set-up, once: device 0 and the stream-ordered pool that keeps freed memory for
// reuse (so repeated calls allocate nothing from the driver). Empty string on success.
std::string initDevice();

// Pinned host chunks for copies, taken in turn: a chunk is handed out once the copy that last used
// it has run (its event), so copies overlap the caller's next memcpy and the kernels. A chunk is
// held by one user (the JavaScript thread or a worker) from acquire to release.
class Staging {
 public:
  static constexpr size_t kChunk = 4u << 20;
  static constexpr int kCount = 16;
  std::string init();
  void free();
  std::string acquire(int* slot, char** ptr);
  // The chunk's copy is enqueued: its event follows it on `stream`.
  std::string mark(int slot, cudaStream_t stream);
  // Waits for the chunk's last marked copy.
  std::string wait(int slot);
  void release(int slot);

 private:
  std::mutex mu_;
  std::condition_variable freed_;
  std::vector<char*> buf_;
  std::vector<cudaEvent_t> ev_;
  std::vector<bool> held_;
  int next_ = 0;
};

struct Context {
  cudaStream_t stream = nullptr;
  Staging staging;
  std::unique_ptr<fa::PlanCache> plans;
  // The plan of the last attention call (addon.lastPlan): a call's result does not carry it, since
  // building that object was most of the result's host time.
  fa::PlanInfo lastPlan;
  bool disposed = false;
  ~Context();
  // host -> device in stream order through the staging (the host bytes may change on return).
  std::string copyIn(void* dst, const void* src, size_t bytes);
  // device -> host, waiting (a worker thread's job): returns when `dst` holds the bytes.
  std::string copyOut(void* dst, const void* src, size_t bytes);
};

// The JavaScript handle of a Context: `addon.createContext()`.
class ContextHandle : public Napi::ObjectWrap<ContextHandle> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  static std::shared_ptr<Context> From(const Napi::Value& v);  // throws a TypeError when not a live one
  explicit ContextHandle(const Napi::CallbackInfo& info);
  std::shared_ptr<Context> ctx;

 private:
  Napi::Value Synchronize(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
};

}  // namespace addon
