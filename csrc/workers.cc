#include "workers.h"

#include <algorithm>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "device_buffer.h"
#include "forward.h"
#include "gpu.h"

namespace addon {
namespace {

// A typed array kept alive (and its bytes addressable) while a worker thread reads or writes it.
struct HostArray {
  Napi::Reference<Napi::TypedArray> ref;
  void* data = nullptr;
  size_t bytes = 0;
  bool present = false;

  static HostArray Of(const Napi::Value& v) {
    HostArray h;
    if (!v.IsTypedArray()) return h;
    Napi::TypedArray t = v.As<Napi::TypedArray>();
    h.data = static_cast<char*>(t.ArrayBuffer().Data()) + t.ByteOffset();
    h.bytes = t.ByteLength();
    h.ref = Napi::Persistent(t);
    h.present = true;
    return h;
  }
};

class PromiseWorker : public Napi::AsyncWorker {
 public:
  explicit PromiseWorker(Napi::Env env, const char* name)
      : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute() final {
    Gpu& gpu = Gpu::get();
    std::lock_guard<std::mutex> lock(gpu.lock());
    std::string err = gpu.init();
    if (err.empty()) err = Run(gpu);
    if (!err.empty()) SetError(err);
  }
  // Runs on the worker thread with the GPU lock held; returns an error message or "".
  virtual std::string Run(Gpu& gpu) = 0;
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }
  Napi::Promise::Deferred deferred_;
};

class UploadWorker : public PromiseWorker {
 public:
  UploadWorker(Napi::Env env, HostArray src) : PromiseWorker(env, "flashattn:upload"), src_(std::move(src)) {}

 protected:
  std::string Run(Gpu& gpu) override {
    std::string err = allocDevMem(src_.bytes, mem_);
    if (err.empty() && src_.bytes) err = gpu.upload(mem_->ptr, src_.data, src_.bytes);
    return err;
  }
  void OnOK() override { deferred_.Resolve(DeviceBuffer::Wrap(Env(), mem_)); }

 private:
  HostArray src_;
  std::shared_ptr<DevMem> mem_;
};

class AllocWorker : public PromiseWorker {
 public:
  AllocWorker(Napi::Env env, size_t bytes) : PromiseWorker(env, "flashattn:alloc"), bytes_(bytes) {}

 protected:
  std::string Run(Gpu& gpu) override {
    std::string err = allocDevMem(bytes_, mem_);
    if (!err.empty()) return err;
    // The stream-ordered allocator may report an impossible size only when the memory is used.
    cudaError_t e = cudaStreamSynchronize(gpu.stream());
    return e == cudaSuccess ? "" : fa::cudaMessage(e, "cudaMallocAsync");
  }
  void OnOK() override { deferred_.Resolve(DeviceBuffer::Wrap(Env(), mem_)); }

 private:
  size_t bytes_;
  std::shared_ptr<DevMem> mem_;
};

class DownloadWorker : public PromiseWorker {
 public:
  DownloadWorker(Napi::Env env, std::shared_ptr<DevMem> src, HostArray dst)
      : PromiseWorker(env, "flashattn:download"), src_(std::move(src)), dst_(std::move(dst)) {}

 protected:
  std::string Run(Gpu& gpu) override { return dst_.bytes ? gpu.download(dst_.data, src_->ptr, dst_.bytes) : ""; }
  void OnOK() override { deferred_.Resolve(Env().Undefined()); }

 private:
  std::shared_ptr<DevMem> src_;
  HostArray dst_;
};

struct Operand {
  HostArray host;
  std::shared_ptr<DevMem> dev;
};

class AttentionWorker : public PromiseWorker {
 public:
  AttentionWorker(Napi::Env env, fa::ForwardArgs args, Operand q, Operand k, Operand v, HostArray out, HostArray lse,
                  bool returnLse, int timeIters)
      : PromiseWorker(env, "flashattn:attention"),
        a_(std::move(args)),
        q_(std::move(q)),
        k_(std::move(k)),
        v_(std::move(v)),
        hostOut_(std::move(out)),
        hostLse_(std::move(lse)),
        returnLse_(returnLse),
        timeIters_(timeIters) {}

 protected:
  std::string Run(Gpu& gpu) override {
    const size_t eb = fa::dtypeBytes(a_.dtype);
    const size_t qBytes = size_t(a_.totalQ) * a_.numHeads * a_.headDim * eb;
    const size_t kBytes = size_t(a_.totalK) * a_.numKvHeads * a_.headDim * eb;
    const size_t vBytes = size_t(a_.totalK) * a_.numKvHeads * a_.headDimV * eb;
    const size_t outBytes = size_t(a_.totalQ) * a_.numHeads * a_.headDimV * eb;
    const size_t lseBytes = size_t(a_.totalQ) * a_.numHeads * sizeof(float);
    std::string err;
    for (auto [op, bytes, name] : {std::tuple{&q_, qBytes, "q"}, {&k_, kBytes, "k"}, {&v_, vBytes, "v"}}) {
      if (!op->dev) {
        if (op->host.bytes != bytes)
          return std::string("host array ") + name + " holds " + std::to_string(op->host.bytes) + " bytes, " +
                 std::to_string(bytes) + " expected";
        if ((err = allocDevMem(bytes, op->dev)).size()) return err;
        if (bytes && (err = gpu.upload(op->dev->ptr, op->host.data, bytes)).size()) return err;
      } else if (op->dev->bytes < bytes) {
        return std::string("device tensor ") + name + " holds " + std::to_string(op->dev->bytes) + " bytes, " +
               std::to_string(bytes) + " expected";
      }
    }
    if (hostOut_.present && hostOut_.bytes != outBytes) return "the host output array has the wrong size";
    if (hostLse_.present && (!returnLse_ || hostLse_.bytes != lseBytes)) return "the host lse array has the wrong size";
    if ((err = allocDevMem(outBytes, out_)).size()) return err;
    if (returnLse_ && (err = allocDevMem(lseBytes, lse_)).size()) return err;
    a_.q = q_.dev->ptr;
    a_.k = k_.dev->ptr;
    a_.v = v_.dev->ptr;
    a_.out = out_->ptr;
    a_.lse = lse_ ? static_cast<float*>(lse_->ptr) : nullptr;

    fa::Forward fwd(gpu.stream());
    err = fwd.prepare(a_, [&gpu](void* dst, const void* src, size_t n) { return gpu.uploadAsync(dst, src, n); });
    if (err.empty()) err = fwd.launch();
    if (err.empty()) {
      cudaError_t e = cudaStreamSynchronize(gpu.stream());
      if (e != cudaSuccess) err = fa::cudaMessage(e, "the attention kernels");
    }
    if (err.empty() && timeIters_ > 0) err = Time(fwd, gpu.stream());
    info_ = fwd.info();
    if (!err.empty()) return err;
    if (hostOut_.present && outBytes && (err = gpu.download(hostOut_.data, out_->ptr, outBytes)).size()) return err;
    if (hostLse_.present && lse_ && lseBytes && (err = gpu.download(hostLse_.data, lse_->ptr, lseBytes)).size())
      return err;
    return "";
  }

  // Median time of timeIters launches, each between two events (kernels only, no copies).
  std::string Time(fa::Forward& fwd, cudaStream_t st) {
    std::vector<cudaEvent_t> ev(2 * timeIters_, nullptr);
    std::string err;
    for (auto& e : ev)
      if (cudaError_t r = cudaEventCreate(&e); r != cudaSuccess) err = fa::cudaMessage(r, "cudaEventCreate");
    for (int i = 0; err.empty() && i < timeIters_; ++i) {
      cudaEventRecord(ev[2 * i], st);
      err = fwd.launch();
      cudaEventRecord(ev[2 * i + 1], st);
    }
    if (err.empty())
      if (cudaError_t r = cudaStreamSynchronize(st); r != cudaSuccess)
        err = fa::cudaMessage(r, "timed attention kernels");
    std::vector<float> ms;
    for (int i = 0; err.empty() && i < timeIters_; ++i) {
      float t = 0;
      if (cudaError_t r = cudaEventElapsedTime(&t, ev[2 * i], ev[2 * i + 1]); r != cudaSuccess)
        err = fa::cudaMessage(r, "cudaEventElapsedTime");
      ms.push_back(t);
    }
    for (auto& e : ev)
      if (e) cudaEventDestroy(e);
    if (err.empty()) {
      std::sort(ms.begin(), ms.end());
      kernelMs_ = ms[ms.size() / 2];
      minMs_ = ms.front();
    }
    return err;
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::Object r = Napi::Object::New(env);
    if (!hostOut_.present) {
      r.Set("out", DeviceBuffer::Wrap(env, out_));
      if (lse_) r.Set("lse", DeviceBuffer::Wrap(env, lse_));
    }
    r.Set("kernelMs", kernelMs_);
    r.Set("minMs", minMs_);
    const fa::Tile tile = info_.kernel.tile;
    r.Set("splits", info_.splits);
    r.Set("tile", tile == fa::Tile::Small ? "small" : tile == fa::Tile::Wgmma ? "wgmma" : "main");
    r.Set("headDimClass", info_.kernel.headDimClass);
    r.Set("numWork", info_.numWork);
    r.Set("blocksPerSm", info_.blocksPerSm);
    deferred_.Resolve(r);
  }

 private:
  fa::ForwardArgs a_;
  Operand q_, k_, v_;
  HostArray hostOut_, hostLse_;
  bool returnLse_;
  int timeIters_;
  std::shared_ptr<DevMem> out_, lse_;
  fa::PlanInfo info_;
  double kernelMs_ = -1, minMs_ = -1;
};

int getInt(const Napi::Object& o, const char* key, int fallback = 0) {
  Napi::Value v = o.Get(key);
  return v.IsNumber() ? v.As<Napi::Number>().Int32Value() : fallback;
}

std::vector<int> getInt32Array(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw Napi::TypeError::New(o.Env(), std::string("Expected an Int32Array for ") + key);
  Napi::Int32Array a = v.As<Napi::Int32Array>();
  return std::vector<int>(a.Data(), a.Data() + a.ElementLength());
}

fa::DType parseDType(const Napi::Value& v) {
  const std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  if (s == "float32") return fa::DType::F32;
  if (s == "float16") return fa::DType::F16;
  if (s == "bfloat16") return fa::DType::BF16;
  throw Napi::TypeError::New(v.Env(), "Expected 'float32', 'float16' or 'bfloat16' for args.dtype");
}

Operand operand(const Napi::Value& v, const char* name) {
  Operand op;
  if (DeviceBuffer::Is(v)) {
    op.dev = DeviceBuffer::From(v);
    if (!op.dev) throw Napi::Error::New(v.Env(), std::string("device tensor ") + name + " has been disposed");
  } else if (v.IsTypedArray()) {
    op.host = HostArray::Of(v);
  } else {
    throw Napi::TypeError::New(v.Env(), std::string("Expected a DeviceBuffer or a typed array for ") + name);
  }
  return op;
}

}  // namespace

Napi::Value Upload(const Napi::CallbackInfo& info) {
  if (!info[0].IsTypedArray()) throw Napi::TypeError::New(info.Env(), "Expected a typed array to upload");
  auto* w = new UploadWorker(info.Env(), HostArray::Of(info[0]));
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

Napi::Value Download(const Napi::CallbackInfo& info) {
  std::shared_ptr<DevMem> src = DeviceBuffer::From(info[0]);
  if (!src) throw Napi::Error::New(info.Env(), "Expected a live (not disposed) DeviceBuffer to download");
  if (!info[1].IsTypedArray()) throw Napi::TypeError::New(info.Env(), "Expected a typed array to download into");
  HostArray dst = HostArray::Of(info[1]);
  if (dst.bytes > src->bytes)
    throw Napi::RangeError::New(info.Env(), "the device buffer holds " + std::to_string(src->bytes) +
                                                " bytes, fewer than the " + std::to_string(dst.bytes) + " requested");
  auto* w = new DownloadWorker(info.Env(), std::move(src), std::move(dst));
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

Napi::Value AllocDevice(const Napi::CallbackInfo& info) {
  const double bytes = info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : -1;
  if (!(bytes >= 0)) throw Napi::TypeError::New(info.Env(), "Expected a byte count");
  auto* w = new AllocWorker(info.Env(), size_t(bytes));
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

Napi::Value Attention(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) throw Napi::TypeError::New(env, "Expected an args object");
  Napi::Object o = info[0].As<Napi::Object>();
  fa::ForwardArgs a;
  a.dtype = parseDType(o.Get("dtype"));
  a.cuSeqlensQ = getInt32Array(o, "cuSeqlensQ");
  a.cuSeqlensK = getInt32Array(o, "cuSeqlensK");
  if (a.cuSeqlensQ.empty() || a.cuSeqlensQ.size() != a.cuSeqlensK.size())
    throw Napi::RangeError::New(env, "cuSeqlensQ and cuSeqlensK must have the same length >= 1");
  a.totalQ = getInt(o, "totalQ");
  a.totalK = getInt(o, "totalK");
  a.maxSeqlenQ = getInt(o, "maxSeqlenQ");
  a.numHeads = getInt(o, "numHeads", 1);
  a.numKvHeads = getInt(o, "numKvHeads", 1);
  a.headDim = getInt(o, "headDim");
  a.headDimV = getInt(o, "headDimV");
  a.windowLeft = getInt(o, "windowLeft", -1);
  a.windowRight = getInt(o, "windowRight", -1);
  a.softmaxScale = o.Get("softmaxScale").ToNumber().FloatValue();
  a.softcap = o.Get("softcap").ToNumber().FloatValue();
  a.fixedSeqlenQ = getInt(o, "fixedSeqlenQ");
  a.poison = o.Get("poison").ToBoolean();
  // The planner's knobs (src/knobs.ts, read once there), passed with every call.
  a.forceSplits = getInt(o, "forceSplits");
  a.forceTile = getInt(o, "forceTile");
  Napi::Value wgmma = o.Get("wgmma"), order = o.Get("order");
  a.wgmma = wgmma.IsUndefined() || wgmma.ToBoolean();
  const std::string orderName = order.IsString() ? order.As<Napi::String>().Utf8Value() : "auto";
  a.order = fa::workOrderFromEnv(orderName.c_str(), fa::WorkOrder::Auto);
  const bool returnLse = o.Get("returnLse").ToBoolean();
  const int timeIters = getInt(o, "timeIters");
  Napi::Value slopes = o.Get("alibiSlopes");
  if (slopes.IsTypedArray()) {
    Napi::Float32Array s = slopes.As<Napi::Float32Array>();
    if (int(s.ElementLength()) != a.numHeads)
      throw Napi::RangeError::New(env, "alibiSlopes must have numHeads entries");
    a.alibiSlopes.assign(s.Data(), s.Data() + s.ElementLength());
  }
  if (a.numHeads < 1 || a.numKvHeads < 1 || a.numHeads % a.numKvHeads || a.headDim < 1 || a.headDim > 256 ||
      a.headDimV < 1 || a.headDimV > 256 || a.cuSeqlensQ.back() != a.totalQ || a.cuSeqlensK.back() != a.totalK)
    throw Napi::RangeError::New(env, "inconsistent attention arguments");
  Operand q = operand(info[1], "q"), k = operand(info[2], "k"), v = operand(info[3], "v");
  HostArray out = HostArray::Of(info[4]), lse = HostArray::Of(info[5]);
  auto* w = new AttentionWorker(env, std::move(a), std::move(q), std::move(k), std::move(v), std::move(out),
                                std::move(lse), returnLse, timeIters);
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

}  // namespace addon
