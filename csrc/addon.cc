// Registers the addon's functions; the work lives in workers.cc (calls), device_buffer.cc
// (device memory owned from JS) and ../cuda (kernels and planning, no N-API types).
#include <cuda_runtime.h>
#include <napi.h>

#include "device_buffer.h"
#include "workers.h"

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

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) {
  using namespace addon;
  DeviceBuffer::Init(env, exports);
  exports.Set("deviceInfo", Napi::Function::New(env, DeviceInfo));
  exports.Set("upload", Napi::Function::New(env, Upload));
  exports.Set("download", Napi::Function::New(env, Download));
  exports.Set("allocDevice", Napi::Function::New(env, AllocDevice));
  exports.Set("attention", Napi::Function::New(env, Attention));
  exports.Set("liveBytes", Napi::Function::New(env, LiveBytes));
  return exports;
}

NODE_API_MODULE(flashattn_cuda, InitAddon)
