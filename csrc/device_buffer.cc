#include "device_buffer.h"

#include <atomic>

#include "context.h"

namespace addon {

static std::atomic<size_t> liveBytes{0};

size_t liveDeviceBytes() {
  return liveBytes.load();
}

DevMem::~DevMem() {
  if (ptr) {
    cudaFreeAsync(ptr, ctx->stream);
    liveBytes -= bytes;
  }
}

std::string allocDevMem(const std::shared_ptr<Context>& ctx, size_t bytes, std::shared_ptr<DevMem>& out) {
  auto mem = std::make_shared<DevMem>();
  mem->bytes = bytes;
  mem->ctx = ctx;
  if (bytes > 0) {
    cudaError_t e = cudaMallocAsync(&mem->ptr, bytes, ctx->stream);
    if (e != cudaSuccess) {
      mem->ptr = nullptr;
      return fa::cudaMessage(e, ("cudaMallocAsync of " + std::to_string(bytes) + " bytes").c_str());
    }
    liveBytes += bytes;
  }
  out = std::move(mem);
  return "";
}

namespace {
struct InstanceData {
  Napi::FunctionReference ctor;
};
}  // namespace

void DeviceBuffer::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function f = DefineClass(
      env, "DeviceBuffer",
      {InstanceAccessor<&DeviceBuffer::Bytes>("bytes"), InstanceAccessor<&DeviceBuffer::Disposed>("disposed"),
       InstanceMethod<&DeviceBuffer::Dispose>("dispose")});
  auto* data = new InstanceData{Napi::Persistent(f)};
  env.SetInstanceData<InstanceData>(data);
  exports.Set("DeviceBuffer", f);
}

DeviceBuffer::DeviceBuffer(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DeviceBuffer>(info) {}

Napi::Object DeviceBuffer::Wrap(Napi::Env env, std::shared_ptr<DevMem> mem) {
  Napi::Object obj = env.GetInstanceData<InstanceData>()->ctor.New({});
  DeviceBuffer* self = Unwrap(obj);
  self->bytes_ = mem->bytes;
  self->mem_ = std::move(mem);
  return obj;
}

bool DeviceBuffer::Is(const Napi::Value& v) {
  if (!v.IsObject()) return false;
  return v.As<Napi::Object>().InstanceOf(v.Env().GetInstanceData<InstanceData>()->ctor.Value());
}

std::shared_ptr<DevMem> DeviceBuffer::From(const Napi::Value& v) {
  if (!Is(v)) return nullptr;
  return Unwrap(v.As<Napi::Object>())->mem_;
}

Napi::Value DeviceBuffer::Bytes(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), double(bytes_));
}

Napi::Value DeviceBuffer::Disposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), !mem_);
}

void DeviceBuffer::Dispose(const Napi::CallbackInfo&) {
  mem_.reset();
}

}  // namespace addon
