// Measurements of this machine for benchmarks. The pinned copy bandwidth of its link: a call from
// typed arrays is judged against bytes / this bandwidth (issue "GPU calls at kernel speed"), measured
// in the same run; also the host copy into pinned memory on copyThreads() threads, the other half of
// a call. And the GPU's idle time between back-to-back kernels (cuda/probe.h).
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <vector>

#include "async.h"
#include "calls.h"
#include "context.h"
#include "copy_pool.h"
#include "probe.h"

namespace addon {
namespace {

struct Result {
  double toDevice = 0, fromDevice = 0, hostCopy = 0, registered = 0;
};

std::string measure(const std::shared_ptr<Context>& ctx, size_t bytes, Result* r) {
  char* pinned = nullptr;
  void* dev = nullptr;
  cudaEvent_t ev[2] = {nullptr, nullptr};
  std::vector<char> pageable(bytes, 1);
  auto run = [&]() -> std::string {
    FA_TRY(cudaMallocHost(&pinned, bytes), "cudaMallocHost");
    FA_TRY(cudaMallocAsync(&dev, bytes, ctx->stream), "cudaMallocAsync");
    for (cudaEvent_t& e : ev) FA_TRY(cudaEventCreate(&e), "cudaEventCreate");
    std::memset(pinned, 1, bytes);
    // The best of five copies each way between events.
    auto best = [&](void* dst, const void* src, cudaMemcpyKind kind, double* gbps) -> std::string {
      float fastest = 1e30f;
      for (int i = 0; i < 5; ++i) {
        FA_TRY(cudaEventRecord(ev[0], ctx->stream), "cudaEventRecord");
        FA_TRY(cudaMemcpyAsync(dst, src, bytes, kind, ctx->stream), "cudaMemcpyAsync");
        FA_TRY(cudaEventRecord(ev[1], ctx->stream), "cudaEventRecord");
        FA_TRY(cudaEventSynchronize(ev[1]), "the timed copy");
        float ms = 0;
        FA_TRY(cudaEventElapsedTime(&ms, ev[0], ev[1]), "cudaEventElapsedTime");
        fastest = std::min(fastest, ms);
      }
      *gbps = double(bytes) / (double(fastest) * 1e6);
      return "";
    };
    if (std::string e = best(dev, pinned, cudaMemcpyHostToDevice, &r->toDevice); !e.empty()) return e;
    if (std::string e = best(pinned, dev, cudaMemcpyDeviceToHost, &r->fromDevice); !e.empty()) return e;
    // Pageable -> pinned in 4 MiB chunks side by side, as Context::copyIn does.
    const size_t chunk = Staging::kChunk, chunks = (bytes + chunk - 1) / chunk;
    double fastest = 1e30;
    for (int i = 0; i < 3; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      parallelFor(chunks, [&](size_t c) {
        const size_t off = c * chunk;
        std::memcpy(pinned + off, pageable.data() + off, std::min(chunk, bytes - off));
      });
      fastest = std::min(fastest, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    r->hostCopy = double(bytes) / (fastest * 1e9);
    // The other way to the link: page-lock the pageable bytes where they are, copy, unlock (what a
    // call would pay per host array instead of the memcpy into staging).
    fastest = 1e30;
    for (int i = 0; i < 3; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      FA_TRY(cudaHostRegister(pageable.data(), bytes, cudaHostRegisterDefault), "cudaHostRegister");
      cudaError_t e = cudaMemcpyAsync(dev, pageable.data(), bytes, cudaMemcpyHostToDevice, ctx->stream);
      if (e == cudaSuccess) e = cudaStreamSynchronize(ctx->stream);
      cudaHostUnregister(pageable.data());
      FA_TRY(e, "the registered copy");
      fastest = std::min(fastest, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    r->registered = double(bytes) / (fastest * 1e9);
    return "";
  };
  std::string err = run();
  if (dev) cudaFreeAsync(dev, ctx->stream);
  cudaStreamSynchronize(ctx->stream);
  if (pinned) cudaFreeHost(pinned);
  for (cudaEvent_t e : ev)
    if (e) cudaEventDestroy(e);
  return err;
}

}  // namespace

// (ctx, bytes) -> Promise<{ toDeviceGBps, fromDeviceGBps, hostCopyGBps, copyThreads }>.
Napi::Value CopyBandwidth(const Napi::CallbackInfo& info) {
  std::shared_ptr<Context> ctx = ContextHandle::From(info[0]);
  const double bytes = info[1].IsNumber() ? info[1].As<Napi::Number>().DoubleValue() : 0;
  if (!(bytes >= 1 && bytes <= double(1ull << 32))) throw Napi::RangeError::New(info.Env(), "Expected 1..2^32 bytes");
  auto r = std::make_shared<Result>();
  return queueWait(
      info.Env(), ctx, "flashattn:bandwidth", [ctx, r, bytes] { return measure(ctx, size_t(bytes), r.get()); },
      [r](Napi::Env env) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        o.Set("toDeviceGBps", r->toDevice);
        o.Set("fromDeviceGBps", r->fromDevice);
        o.Set("hostCopyGBps", r->hostCopy);
        o.Set("registeredGBps", r->registered);
        o.Set("copyThreads", copyThreads());
        return o;
      });
}

// (ctx, { launches, blocks, spinUs, dependent, allocBetween }) -> Promise<number[]>: the gaps in
// microseconds between back-to-back probe kernels on the context's stream (cuda/probe.h).
Napi::Value LaunchGaps(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<Context> ctx = ContextHandle::From(info[0]);
  if (!info[1].IsObject()) throw Napi::TypeError::New(env, "Expected the probe's options");
  Napi::Object o = info[1].As<Napi::Object>();
  fa::GapProbe g;
  g.launches = std::clamp(o.Get("launches").ToNumber().Int32Value(), 2, 10000);
  g.blocks = std::clamp(o.Get("blocks").ToNumber().Int32Value(), 1, 1 << 20);
  g.spinNs = unsigned(std::clamp(o.Get("spinUs").ToNumber().DoubleValue(), 0.0, 1e6) * 1000);
  g.dependent = o.Get("dependent").ToBoolean();
  g.allocBetween = size_t(std::max(0.0, o.Get("allocBetween").ToNumber().DoubleValue()));
  auto gaps = std::make_shared<std::vector<double>>();
  return queueWait(
      env, ctx, "flashattn:gaps", [ctx, g, gaps]() { return fa::probeGaps(g, ctx->stream, gaps.get()); },
      [gaps](Napi::Env e) -> Napi::Value {
        Napi::Array a = Napi::Array::New(e, gaps->size());
        for (size_t i = 0; i < gaps->size(); ++i) a.Set(uint32_t(i), (*gaps)[i]);
        return a;
      });
}

}  // namespace addon
