// Registers the addon's functions; the work lives in context.cc (an engine's stream and staging),
// calls.cc (the calls on a context), device_buffer.cc (device memory owned from JS) and ../cuda
// (kernels and planning, no N-API types).
#include <cuda_runtime.h>
#include <napi.h>

#include "calls.h"
#include "context.h"
#include "aux_kernels.h"
#include "device_buffer.h"
#include "host_clock.h"
#include "pinned.h"

namespace addon {
namespace {

// Never throws: a machine without a driver is an answer ("error"), not a failure.
Napi::Value DeviceInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object r = Napi::Object::New(env);
  int runtime = 0, driver = 0;
  cudaRuntimeGetVersion(&runtime);
  cudaDriverGetVersion(&driver);
  r.Set("runtimeVersion", runtime);
  r.Set("driverVersion", driver);
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    // 35 (cudaErrorInsufficientDriver) where no driver is installed; any status means no device.
    r.Set("error", std::string("cudaGetDeviceCount returned ") + std::to_string(int(e)) + " (" + cudaGetErrorName(e) +
                       ": " + cudaGetErrorString(e) + ")");
    cudaGetLastError();
    return r;
  }
  r.Set("count", count);
  if (count == 0) {
    r.Set("error", "cudaGetDeviceCount found no CUDA device");
    return r;
  }
  cudaDeviceProp p;
  e = cudaGetDeviceProperties(&p, 0);
  if (e != cudaSuccess) {
    r.Set("error",
          std::string("cudaGetDeviceProperties failed: ") + cudaGetErrorName(e) + ": " + cudaGetErrorString(e));
    return r;
  }
  r.Set("name", p.name);
  r.Set("major", p.major);
  r.Set("minor", p.minor);
  r.Set("multiProcessorCount", p.multiProcessorCount);
  r.Set("totalGlobalMem", double(p.totalGlobalMem));
  r.Set("l2CacheSize", p.l2CacheSize);
  r.Set("sharedMemPerBlockOptin", double(p.sharedMemPerBlockOptin));
  return r;
}

}  // namespace
}  // namespace addon

static Napi::Value LiveBytes(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), double(addon::liveDeviceBytes()));
}

// The stream-ordered pool's memory: reserved from the driver, and in use (tests check it stays flat).
static Napi::Value PoolBytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object r = Napi::Object::New(env);
  cudaMemPool_t pool;
  uint64_t reserved = 0, used = 0;
  if (cudaDeviceGetDefaultMemPool(&pool, 0) == cudaSuccess) {
    cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReservedMemCurrent, &reserved);
    cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemCurrent, &used);
  }
  r.Set("reserved", double(reserved));
  r.Set("used", double(used));
  return r;
}

// (on) -> { calls, us: { part: microseconds } } since the last call, then counts again from zero, only
// while `on` (cuda/host_clock.h): a benchmark's view of where an attention call's host time goes.
static Napi::Value HostProfile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  fa::HostClock& clock = fa::hostClock();
  Napi::Object r = Napi::Object::New(env), us = Napi::Object::New(env);
  r.Set("calls", double(clock.calls));
  for (int p = 0; p < fa::kHostParts; ++p) us.Set(fa::hostPartName(p), clock.us[p]);
  r.Set("us", us);
  clock.reset();
  clock.on = info[0].ToBoolean();
  return r;
}

// Test hook: enqueues a kernel that traps on the context's stream.
static Napi::Value Trap(const Napi::CallbackInfo& info) {
  std::shared_ptr<addon::Context> ctx = addon::ContextHandle::From(info[0]);
  cudaError_t e = fa::launchTrap(ctx->stream);
  if (e != cudaSuccess) throw Napi::Error::New(info.Env(), fa::cudaMessage(e, "launching the trap kernel"));
  return info.Env().Undefined();
}

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) {
  using namespace addon;
  DeviceBuffer::Init(env, exports);
  ContextHandle::Init(env, exports);
  exports.Set("deviceInfo", Napi::Function::New(env, DeviceInfo));
  exports.Set("upload", Napi::Function::New(env, Upload));
  exports.Set("download", Napi::Function::New(env, Download));
  exports.Set("allocDevice", Napi::Function::New(env, AllocDevice));
  exports.Set("attention", Napi::Function::New(env, Attention));
  exports.Set("lastPlan", Napi::Function::New(env, LastPlan));
  exports.Set("kvWrite", Napi::Function::New(env, KvWrite));
  exports.Set("merge", Napi::Function::New(env, Merge));
  exports.Set("timeAttention", Napi::Function::New(env, TimeAttention));
  exports.Set("hostProfile", Napi::Function::New(env, HostProfile));
  exports.Set("copyBandwidth", Napi::Function::New(env, CopyBandwidth));
  exports.Set("launchGaps", Napi::Function::New(env, LaunchGaps));
  exports.Set("hostArray", Napi::Function::New(env, HostArray));
  exports.Set("liveBytes", Napi::Function::New(env, LiveBytes));
  exports.Set("livePinnedBytes", Napi::Function::New(env, [](const Napi::CallbackInfo& i) -> Napi::Value {
                return Napi::Number::New(i.Env(), double(livePinnedBytes()));
              }));
  exports.Set("poolBytes", Napi::Function::New(env, PoolBytes));
  exports.Set("trap", Napi::Function::New(env, Trap));
  return exports;
}

NODE_API_MODULE(flashattn_cuda, InitAddon)
