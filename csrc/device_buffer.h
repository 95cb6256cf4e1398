// Device memory owned from JavaScript. DevMem is the allocation, made on one context's stream; it
// is freed in that stream's order when its last owner lets go: the DeviceBuffer JS object (on
// dispose() or when the garbage collector finalises it) or a call that uses it. Since every call of
// an engine runs in its stream order, disposing a tensor right after a call that reads it is safe:
// the memory goes back after that call's kernels.
#pragma once
#include <napi.h>

#include <cstddef>
#include <memory>
#include <string>

namespace addon {

struct Context;

struct DevMem {
  void* ptr = nullptr;
  size_t bytes = 0;
  std::shared_ptr<Context> ctx;
  ~DevMem();
};

// Bytes of device memory held by live DevMem objects (tests check that dispose and the
// finalizer give memory back).
size_t liveDeviceBytes();

// Allocates in `ctx`'s stream order (from the pool: no driver call once it is warm). Empty string on success.
std::string allocDevMem(const std::shared_ptr<Context>& ctx, size_t bytes, std::shared_ptr<DevMem>& out);

class DeviceBuffer : public Napi::ObjectWrap<DeviceBuffer> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  static Napi::Object Wrap(Napi::Env env, std::shared_ptr<DevMem> mem);
  // The buffer behind a JS value, or null when it is not a live DeviceBuffer.
  static std::shared_ptr<DevMem> From(const Napi::Value& v);
  static bool Is(const Napi::Value& v);

  explicit DeviceBuffer(const Napi::CallbackInfo& info);

 private:
  Napi::Value Bytes(const Napi::CallbackInfo& info);
  Napi::Value Disposed(const Napi::CallbackInfo& info);
  void Dispose(const Napi::CallbackInfo& info);
  std::shared_ptr<DevMem> mem_;
  size_t bytes_ = 0;
};

}  // namespace addon
