// The addon's calls on a context (csrc/context.h). Work on device buffers is enqueued on the
// context's stream from the JavaScript thread and returns at once: outputs are valid in stream
// order for the next call, and a kernel fault surfaces at the next wait (synchronize, download,
// a call from typed arrays). Host arrays are copied into pinned staging before a call returns (so
// the caller may reuse them at once); the copy back waits on a worker thread.
#include "calls.h"

#include <algorithm>
#include <memory>
#include <utility>
#include <string>
#include <vector>

#include "args.h"
#include "async.h"
#include "context.h"
#include "device_buffer.h"
#include "forward.h"
#include "host_clock.h"

namespace addon {
namespace {

[[noreturn]] void fail(Napi::Env env, const std::string& err) {
  throw Napi::Error::New(env, err);
}

// A typed array's bytes (valid while the JavaScript value is).
struct HostBytes {
  void* data = nullptr;
  size_t bytes = 0;
  bool present = false;
  static HostBytes Of(const Napi::Value& v) {
    HostBytes h;
    if (!v.IsTypedArray()) return h;
    Napi::TypedArray t = v.As<Napi::TypedArray>();
    h.data = static_cast<char*>(t.ArrayBuffer().Data()) + t.ByteOffset();
    h.bytes = t.ByteLength();
    h.present = true;
    return h;
  }
};

std::shared_ptr<DevMem> deviceOf(const Napi::Value& v, const std::shared_ptr<Context>& ctx, const char* name) {
  std::shared_ptr<DevMem> m = DeviceBuffer::From(v);
  if (!m) fail(v.Env(), std::string("device tensor ") + name + " has been disposed");
  if (m->ctx != ctx)
    throw Napi::TypeError::New(v.Env(), std::string("device tensor ") + name + " belongs to another engine");
  return m;
}

// Copies a typed array into a new device buffer (stream order); the array may change on return.
std::shared_ptr<DevMem> upload(Napi::Env env, const std::shared_ptr<Context>& ctx, const HostBytes& h) {
  std::shared_ptr<DevMem> m;
  if (std::string e = allocDevMem(ctx, h.bytes, m); !e.empty()) fail(env, e);
  if (h.bytes)
    if (std::string e = ctx->copyIn(m->ptr, h.data, h.bytes); !e.empty()) fail(env, e);
  return m;
}

// A staging chunk lent to one call's kernels, which read it directly (fa::Lender): marked with the
// stream and given back when this goes, after the call's last launch was enqueued.
class Loan {
 public:
  explicit Loan(Context& ctx) : ctx_(ctx) {}
  ~Loan() {
    if (slot_ < 0) return;
    (void)ctx_.staging.mark(slot_, ctx_.stream);  // (an error here is the stream's: the next wait reports it)
    ctx_.staging.release(slot_);
  }
  Loan(const Loan&) = delete;
  Loan& operator=(const Loan&) = delete;
  fa::Lender lender() {
    return [this](size_t bytes) -> void* {
      char* p = nullptr;
      if (slot_ >= 0 || bytes > Staging::kChunk || !ctx_.staging.acquire(&slot_, &p).empty()) return nullptr;
      return p;
    };
  }

 private:
  Context& ctx_;
  int slot_ = -1;
};

Napi::Object planInfo(Napi::Env env, const fa::PlanInfo& info) {
  Napi::Object r = Napi::Object::New(env);
  const fa::Tile tile = info.kernel.tile;
  r.Set("splits", info.splits);
  r.Set("tile", tile == fa::Tile::Small ? "small" : tile == fa::Tile::Wgmma ? "wgmma" : "main");
  r.Set("headDimClass", info.kernel.headDimClass);
  r.Set("numWork", info.numWork);
  r.Set("blocksPerSm", info.blocksPerSm);
  r.Set("planReused", info.planReused);
  r.Set("fixup", info.fixup);
  r.Set("split", info.kernel.split);
  r.Set("full", info.kernel.full);
  return r;
}

struct Sizes {
  size_t q, k, v, out, lse;
  explicit Sizes(const fa::ForwardArgs& a) {
    const size_t eb = fa::dtypeBytes(a.dtype);
    const size_t keyRows = a.paged ? size_t(a.poolRows) : size_t(a.totalK);  // a paged call reads the cache's pool
    q = size_t(a.totalQ) * a.numHeads * a.headDim * eb;
    k = keyRows * a.numKvHeads * a.headDim * eb;
    v = keyRows * a.numKvHeads * a.headDimV * eb;
    out = size_t(a.totalQ) * a.numHeads * a.headDimV * eb;
    lse = size_t(a.totalQ) * a.numHeads * sizeof(float);
  }
};

// The operands of a call: device buffers of this context, or typed arrays uploaded now.
std::shared_ptr<DevMem> operand(const Napi::Value& v, const std::shared_ptr<Context>& ctx, size_t bytes,
                                const char* name) {
  if (DeviceBuffer::Is(v)) {
    std::shared_ptr<DevMem> m = deviceOf(v, ctx, name);
    if (m->bytes < bytes)
      throw Napi::RangeError::New(v.Env(), std::string("device tensor ") + name + " holds " + std::to_string(m->bytes) +
                                               " bytes, " + std::to_string(bytes) + " expected");
    return m;
  }
  HostBytes h = HostBytes::Of(v);
  if (!h.present)
    throw Napi::TypeError::New(v.Env(), std::string("Expected a DeviceBuffer or a typed array for ") + name);
  if (h.bytes != bytes)
    throw Napi::RangeError::New(v.Env(), std::string("host array ") + name + " holds " + std::to_string(h.bytes) +
                                             " bytes, " + std::to_string(bytes) + " expected");
  return upload(v.Env(), ctx, h);
}

// An output: the caller's device buffer (written in place), or a new one.
std::shared_ptr<DevMem> output(const Napi::Value& v, const std::shared_ptr<Context>& ctx, size_t bytes,
                               const char* name) {
  if (DeviceBuffer::Is(v)) {
    std::shared_ptr<DevMem> m = deviceOf(v, ctx, name);
    if (m->bytes < bytes) throw Napi::RangeError::New(v.Env(), std::string("device tensor ") + name + " is too small");
    return m;
  }
  std::shared_ptr<DevMem> m;
  if (std::string e = allocDevMem(ctx, bytes, m); !e.empty()) fail(v.Env(), e);
  return m;
}

}  // namespace

// (ctx, numbers, ints, q, k, v, out?, lse?, kNew?, vNew?), the arguments packed (args.h): q, k, v
// device buffers or typed arrays; out / lse
// device buffers to write into, typed arrays to copy the results into (then a promise of the plan
// info), or undefined (new device buffers, returned at once as { out, lse }; the plan info of the
// call is addon.lastPlan(ctx)'s until the next call). A KV cache call
// (args.paged) has the cache's pools as k and v, and with args.paged.write its new rows as kNew and
// vNew, written into the cache before any read.
Napi::Value Attention(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  fa::HostClock& clock = fa::hostClock();
  clock.start();
  std::shared_ptr<Context> ctx = ContextHandle::From(info[0]);
  bool returnLse = false;
  fa::ForwardArgs a = parseForwardArgs(info[1], info[2], &returnLse);
  const Sizes sz(a);
  clock.lap(fa::kPartParse);
  std::shared_ptr<DevMem> q = operand(info[3], ctx, sz.q, "q"), k = operand(info[4], ctx, sz.k, "k"),
                          v = operand(info[5], ctx, sz.v, "v");
  const Napi::Value outArg = info[6], lseArg = info[7];
  HostBytes hostOut = HostBytes::Of(outArg), hostLse = HostBytes::Of(lseArg);
  if (hostOut.present && hostOut.bytes != sz.out)
    throw Napi::RangeError::New(env, "the host output array has the wrong size");
  if (hostLse.present && (!returnLse || hostLse.bytes != sz.lse))
    throw Napi::RangeError::New(env, "the host lse array has the wrong size");
  std::shared_ptr<DevMem> out = output(outArg, ctx, sz.out, "out");
  std::shared_ptr<DevMem> lse = returnLse ? output(lseArg, ctx, sz.lse, "lse") : nullptr;
  std::shared_ptr<DevMem> kNew, vNew;  // a KV cache call's new rows (device buffers or typed arrays)
  if (a.paged && a.totalNew > 0) {
    const size_t eb = fa::dtypeBytes(a.dtype), rows = size_t(a.totalNew) * a.numKvHeads;
    kNew = operand(info[8], ctx, rows * a.headDim * eb, "kNew");
    vNew = operand(info[9], ctx, rows * a.headDimV * eb, "vNew");
    a.kNew = kNew->ptr;
    a.vNew = vNew->ptr;
  }
  a.q = q->ptr;
  a.k = k->ptr;
  a.v = v->ptr;
  a.out = out->ptr;
  a.lse = lse ? static_cast<float*>(lse->ptr) : nullptr;
  clock.lap(fa::kPartOperands);
  fa::PlanInfo plan;
  {
    Loan loan(*ctx);  // (goes after the Forward: its chunk is marked after the launches)
    fa::Forward fwd(ctx->stream);
    auto copy = [&ctx](void* dst, const void* src, size_t n) { return ctx->copyIn(dst, src, n); };
    std::string err = fwd.prepare(std::move(a), copy, ctx->plans.get(), loan.lender());
    if (err.empty()) err = fwd.launch();
    if (!err.empty()) fail(env, err);
    plan = fwd.info();
  }  // the call's temporaries go back in stream order, after its kernels
  ctx->lastPlan = plan;
  clock.lap(fa::kPartFree);
  if (!hostOut.present) {
    Napi::Object r = Napi::Object::New(env);
    if (!DeviceBuffer::Is(outArg)) r.Set("out", DeviceBuffer::Wrap(env, out));
    if (lse && !DeviceBuffer::Is(lseArg)) r.Set("lse", DeviceBuffer::Wrap(env, lse));
    clock.lap(fa::kPartResult);
    return r;
  }
  // Typed-array results: copied back on a worker thread; the arrays are the engine's own.
  auto keep = [](const Napi::Value& v) {
    return std::make_shared<Napi::Reference<Napi::Value>>(v.IsObject() ? Napi::Persistent(v)
                                                                       : Napi::Reference<Napi::Value>());
  };
  auto outRef = keep(outArg), lseRef = keep(lseArg);
  return queueWait(
      env, ctx, "flashattn:attention",
      [ctx, out, lse, hostOut, hostLse, sz, q, k, v]() -> std::string {
        std::string e = ctx->copyOut(hostOut.data, out->ptr, sz.out);
        if (e.empty() && lse && hostLse.present) e = ctx->copyOut(hostLse.data, lse->ptr, sz.lse);
        return e;
      },
      [plan, outRef, lseRef](Napi::Env e) -> Napi::Value { return planInfo(e, plan); });
}

// (ctx) -> the plan info of the context's last attention call.
Napi::Value LastPlan(const Napi::CallbackInfo& info) {
  return planInfo(info.Env(), ContextHandle::From(info[0])->lastPlan);
}

// (ctx, numbers, ints, kCache, vCache, kNew, vNew) -> undefined, at once (stream order): the write of a
// KV cache call alone, before the attention that reads it, packed as a call without query rows whose
// keys are each sequence's rows after the write (src/cuda/pack.ts packWrite). kNew/vNew: device
// buffers or typed arrays (copied into staging before this returns).
Napi::Value KvWrite(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<Context> ctx = ContextHandle::From(info[0]);
  bool returnLse = false;
  const fa::ForwardArgs a = parseForwardArgs(info[1], info[2], &returnLse);
  if (!a.paged || a.totalQ != 0) throw Napi::RangeError::New(env, "Expected a write's packed arguments");
  const size_t eb = fa::dtypeBytes(a.dtype), kRow = size_t(a.numKvHeads) * a.headDim,
               vRow = size_t(a.numKvHeads) * a.headDimV;
  std::shared_ptr<DevMem> kc = operand(info[3], ctx, a.poolRows * kRow * eb, "cache.k"),
                          vc = operand(info[4], ctx, a.poolRows * vRow * eb, "cache.v");
  if (a.totalNew == 0) return env.Undefined();
  std::shared_ptr<DevMem> kn = operand(info[5], ctx, a.totalNew * kRow * eb, "kNew"),
                          vn = operand(info[6], ctx, a.totalNew * vRow * eb, "vNew");
  // Each new row's cache row, read by the prologue from lent staging (or uploaded when too many).
  Loan loan(*ctx);
  std::vector<int> own;
  HostBytes h;
  h.bytes = sizeof(int) * a.totalNew;
  h.data = loan.lender()(h.bytes);
  if (!h.data) {
    own.resize(a.totalNew);
    h.data = own.data();
  }
  fa::cacheRowsOf(a, static_cast<int*>(h.data));
  std::shared_ptr<DevMem> dRows = own.empty() ? nullptr : upload(env, ctx, h);
  const fa::PagedPrologue pro{nullptr,    nullptr,   0,        static_cast<const int*>(dRows ? dRows->ptr : h.data),
                              a.totalNew, int(kRow), int(vRow)};
  cudaError_t e = fa::launchPrologue(a.dtype, kn->ptr, vn->ptr, kc->ptr, vc->ptr, pro, ctx->stream);
  if (e != cudaSuccess) fail(env, fa::cudaMessage(e, "launching the KV cache write"));
  return env.Undefined();  // kn, vn and dRows go back in stream order, after the write
}

// (ctx, { dtype, batch, seqlen, heads, dv }, outs[], lses[]) -> { out, lse } device buffers, at once
// (stream order): mergeAttention of the parts' device results (cuda/aux_kernels.h mergeParts).
Napi::Value Merge(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<Context> ctx = ContextHandle::From(info[0]);
  if (!info[1].IsObject() || !info[2].IsArray() || !info[3].IsArray())
    throw Napi::TypeError::New(env, "Expected (ctx, args, outs, lses)");
  Napi::Object o = info[1].As<Napi::Object>();
  const fa::DType dtype = parseDType(o.Get("dtype"));
  fa::MergeParts m{};
  m.batch = o.Get("batch").ToNumber().Int32Value();
  m.seqlen = o.Get("seqlen").ToNumber().Int32Value();
  m.heads = o.Get("heads").ToNumber().Int32Value();
  m.dv = o.Get("dv").ToNumber().Int32Value();
  Napi::Array outs = info[2].As<Napi::Array>(), lses = info[3].As<Napi::Array>();
  m.numParts = int(outs.Length());
  if (m.numParts < 1 || m.numParts > fa::kMaxMergeParts || lses.Length() != outs.Length() || m.batch < 0 ||
      m.seqlen < 0 || m.heads < 1 || m.dv < 1)
    throw Napi::RangeError::New(env, "Expected 1 to 64 parts with an lse each");
  const size_t rows = size_t(m.batch) * m.seqlen * m.heads;
  const size_t outBytes = rows * m.dv * fa::dtypeBytes(dtype), lseBytes = rows * sizeof(float);
  std::vector<std::shared_ptr<DevMem>> held;  // the parts, until the kernel is enqueued (then stream order)
  for (int p = 0; p < m.numParts; ++p) {
    held.push_back(operand(outs.Get(p), ctx, outBytes, "parts[].out"));
    held.push_back(operand(lses.Get(p), ctx, lseBytes, "parts[].lse"));
    m.out[p] = held[2 * p]->ptr;
    m.lse[p] = static_cast<const float*>(held[2 * p + 1]->ptr);
  }
  std::shared_ptr<DevMem> out = output(env.Undefined(), ctx, outBytes, "out"),
                          lse = output(env.Undefined(), ctx, lseBytes, "lse");
  if (cudaError_t e = fa::mergeParts(dtype, m, out->ptr, static_cast<float*>(lse->ptr), ctx->stream); e != cudaSuccess)
    fail(env, fa::cudaMessage(e, "launching the merge"));
  Napi::Object r = Napi::Object::New(env);
  r.Set("out", DeviceBuffer::Wrap(env, out));
  r.Set("lse", DeviceBuffer::Wrap(env, lse));
  return r;
}

// (ctx, typedArray) -> DeviceBuffer, at once: the copy is enqueued (the array may change on return).
Napi::Value Upload(const Napi::CallbackInfo& info) {
  std::shared_ptr<Context> ctx = ContextHandle::From(info[0]);
  if (!info[1].IsTypedArray()) throw Napi::TypeError::New(info.Env(), "Expected a typed array to upload");
  return DeviceBuffer::Wrap(info.Env(), upload(info.Env(), ctx, HostBytes::Of(info[1])));
}

// (ctx, DeviceBuffer, typedArray) -> Promise<void>: in stream order, after the calls before it.
Napi::Value Download(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<Context> ctx = ContextHandle::From(info[0]);
  std::shared_ptr<DevMem> src = DeviceBuffer::From(info[1]);
  if (!src) fail(env, "Expected a live (not disposed) DeviceBuffer to download");
  if (src->ctx != ctx) throw Napi::TypeError::New(env, "the device buffer belongs to another engine");
  if (!info[2].IsTypedArray()) throw Napi::TypeError::New(env, "Expected a typed array to download into");
  HostBytes dst = HostBytes::Of(info[2]);
  if (dst.bytes > src->bytes)
    throw Napi::RangeError::New(env, "the device buffer holds " + std::to_string(src->bytes) +
                                         " bytes, fewer than the " + std::to_string(dst.bytes) + " requested");
  auto keep = std::make_shared<Napi::Reference<Napi::Value>>(Napi::Persistent(info[2]));
  return queueWait(
      env, ctx, "flashattn:download",
      [ctx, src, dst]() { return dst.bytes ? ctx->copyOut(dst.data, src->ptr, dst.bytes) : std::string(); },
      [keep](Napi::Env e) -> Napi::Value { return e.Undefined(); });
}

// (ctx, bytes, zero?) -> Promise<DeviceBuffer>: waits, so that a size the pool cannot give fails
// here; zero: the bytes are zeros (a fresh KV cache).
Napi::Value AllocDevice(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<Context> ctx = ContextHandle::From(info[0]);
  const double bytes = info[1].IsNumber() ? info[1].As<Napi::Number>().DoubleValue() : -1;
  if (!(bytes >= 0)) throw Napi::TypeError::New(env, "Expected a byte count");
  const bool zero = info[2].ToBoolean();
  auto mem = std::make_shared<std::shared_ptr<DevMem>>();
  return queueWait(
      env, ctx, "flashattn:alloc",
      [ctx, mem, bytes, zero]() -> std::string {
        if (std::string e = allocDevMem(ctx, size_t(bytes), *mem); !e.empty()) return e;
        if (zero && bytes > 0) FA_TRY(cudaMemsetAsync((*mem)->ptr, 0, size_t(bytes), ctx->stream), "cudaMemsetAsync");
        FA_TRY(cudaStreamSynchronize(ctx->stream), "cudaMallocAsync");
        return "";
      },
      [mem](Napi::Env e) -> Napi::Value { return DeviceBuffer::Wrap(e, *mem); });
}

// (ctx, numbers, ints, q, k, v, iters) -> Promise<plan info + kernelMs, minMs>: the median of `iters` launches
// between CUDA events (kernels only, device buffers only), for benchmarks.
Napi::Value TimeAttention(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<Context> ctx = ContextHandle::From(info[0]);
  bool returnLse = false;
  fa::ForwardArgs a = parseForwardArgs(info[1], info[2], &returnLse);
  const int iters = std::max(1, info[6].IsNumber() ? info[6].As<Napi::Number>().Int32Value() : 1);
  const Sizes sz(a);
  std::shared_ptr<DevMem> q = operand(info[3], ctx, sz.q, "q"), k = operand(info[4], ctx, sz.k, "k"),
                          v = operand(info[5], ctx, sz.v, "v");
  std::shared_ptr<DevMem> out = output(env.Undefined(), ctx, sz.out, "out");
  std::shared_ptr<DevMem> lse = returnLse ? output(env.Undefined(), ctx, sz.lse, "lse") : nullptr;
  a.q = q->ptr;
  a.k = k->ptr;
  a.v = v->ptr;
  a.out = out->ptr;
  a.lse = lse ? static_cast<float*>(lse->ptr) : nullptr;
  auto fwd = std::make_shared<fa::Forward>(ctx->stream);
  auto copy = [&ctx](void* dst, const void* src, size_t n) { return ctx->copyIn(dst, src, n); };
  Loan loan(*ctx);  // read by every launch below; marked when this function returns
  if (std::string e = fwd->prepare(std::move(a), copy, ctx->plans.get(), loan.lender()); !e.empty()) fail(env, e);
  std::vector<cudaEvent_t> ev(2 * iters, nullptr);
  for (auto& e : ev)
    if (cudaError_t r = cudaEventCreate(&e); r != cudaSuccess) fail(env, fa::cudaMessage(r, "cudaEventCreate"));
  for (int i = 0; i < iters; ++i) {
    cudaEventRecord(ev[2 * i], ctx->stream);
    if (std::string e = fwd->launch(); !e.empty()) fail(env, e);
    cudaEventRecord(ev[2 * i + 1], ctx->stream);
  }
  auto ms = std::make_shared<std::vector<float>>();
  const fa::PlanInfo plan = fwd->info();
  return queueWait(
      env, ctx, "flashattn:time",
      [ev, ms, fwd, q, k, v, out, lse]() -> std::string {
        std::string err;
        if (cudaError_t r = cudaEventSynchronize(ev.back()); r != cudaSuccess)
          err = fa::cudaMessage(r, "timed kernels");
        for (size_t i = 0; err.empty() && i + 1 < ev.size(); i += 2) {
          float t = 0;
          if (cudaError_t r = cudaEventElapsedTime(&t, ev[i], ev[i + 1]); r != cudaSuccess)
            err = fa::cudaMessage(r, "cudaEventElapsedTime");
          ms->push_back(t);
        }
        for (cudaEvent_t e : ev) cudaEventDestroy(e);
        std::sort(ms->begin(), ms->end());
        return err;
      },
      [plan, ms](Napi::Env e) -> Napi::Value {
        Napi::Object r = planInfo(e, plan);
        r.Set("kernelMs", (*ms)[ms->size() / 2]);
        r.Set("minMs", ms->front());
        double sum = 0;
        for (float t : *ms) sum += t;
        r.Set("meanMs", sum / double(ms->size()));
        return r;
      });
}

}  // namespace addon
