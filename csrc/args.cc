#include "args.h"

#include <string>
#include <vector>

namespace addon {
namespace {

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

}  // namespace

std::vector<int> int32ArrayOf(const Napi::Object& o, const char* key) {
  return getInt32Array(o, key);
}

fa::DType parseDType(const Napi::Value& v) {
  const std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  if (s == "float32") return fa::DType::F32;
  if (s == "float16") return fa::DType::F16;
  if (s == "bfloat16") return fa::DType::BF16;
  throw Napi::TypeError::New(v.Env(), "Expected 'float32', 'float16' or 'bfloat16' for args.dtype");
}

void parsePaging(const Napi::Object& o, fa::ForwardArgs& a) {
  a.paged = true;
  a.blockTable = getInt32Array(o, "blockTable");
  a.maxBlocks = getInt(o, "maxBlocks");
  a.blockSize = getInt(o, "blockSize");
  const double rows = o.Get("poolRows").ToNumber().DoubleValue();
  const size_t batch = a.cuSeqlensK.size() - 1;
  if (a.blockSize < 1 || a.maxBlocks < 0 || !(rows >= 1 && rows < 2147483648.0) ||
      a.blockTable.size() != batch * size_t(a.maxBlocks))
    throw Napi::RangeError::New(o.Env(), "Expected a block table of batch x maxBlocks entries and a pool of rows");
  a.poolRows = int64_t(rows);
  // The call's own write (attentionWithKvCache with kNew/vNew), enqueued before its reads.
  Napi::Value write = o.Get("write");
  if (write.IsObject()) {
    Napi::Object w = write.As<Napi::Object>();
    a.cuSeqlensNew = getInt32Array(w, "cuSeqlensNew");
    a.cacheSeqlens = getInt32Array(w, "cacheSeqlens");
    a.totalNew = getInt(w, "totalNew");
    if (a.cuSeqlensNew.size() != batch + 1 || a.cacheSeqlens.size() != batch || a.totalNew < 0 ||
        a.cuSeqlensNew.back() != a.totalNew)
      throw Napi::RangeError::New(o.Env(), "Expected the write's cuSeqlensNew [batch + 1] and cacheSeqlens [batch]");
    for (size_t b = 0; b < batch; ++b)
      if (a.cacheSeqlens[b] < 0 || int64_t(a.cacheSeqlens[b]) + a.cuSeqlensNew[b + 1] - a.cuSeqlensNew[b] !=
                                       a.cuSeqlensK[b + 1] - a.cuSeqlensK[b])
        throw Napi::RangeError::New(o.Env(), "the write's lengths do not add up to the keys of the call");
  }
  // The façade checked every block a sequence reads; this only keeps a wrong call off the GPU.
  const int64_t numBlocks = a.poolRows / a.blockSize;
  for (size_t b = 0; b < batch; ++b) {
    const int64_t lk = a.cuSeqlensK[b + 1] - a.cuSeqlensK[b], used = (lk + a.blockSize - 1) / a.blockSize;
    if (lk < 0 || used > a.maxBlocks) throw Napi::RangeError::New(o.Env(), "a sequence outgrows its block table");
    for (int64_t i = 0; i < used; ++i) {
      const int id = a.blockTable[b * a.maxBlocks + i];
      if (id < 0 || id >= numBlocks) throw Napi::RangeError::New(o.Env(), "a block id is outside the pool");
    }
  }
}

fa::ForwardArgs parseForwardArgs(const Napi::Object& o) {
  fa::ForwardArgs a;
  a.dtype = parseDType(o.Get("dtype"));
  a.cuSeqlensQ = getInt32Array(o, "cuSeqlensQ");
  a.cuSeqlensK = getInt32Array(o, "cuSeqlensK");
  if (a.cuSeqlensQ.empty() || a.cuSeqlensQ.size() != a.cuSeqlensK.size())
    throw Napi::RangeError::New(o.Env(), "cuSeqlensQ and cuSeqlensK must have the same length >= 1");
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
  a.float32AsHalf = o.Get("float32AsHalf").ToBoolean();
  // The planner's knobs (src/knobs.ts, read once there), passed with every call.
  a.forceSplits = getInt(o, "forceSplits");
  a.forceTile = getInt(o, "forceTile");
  Napi::Value wgmma = o.Get("wgmma"), order = o.Get("order");
  a.wgmma = wgmma.IsUndefined() || wgmma.ToBoolean();
  const std::string orderName = order.IsString() ? order.As<Napi::String>().Utf8Value() : "auto";
  a.order = fa::workOrderFromEnv(orderName.c_str(), fa::WorkOrder::Auto);
  Napi::Value paged = o.Get("paged");
  if (paged.IsObject()) parsePaging(paged.As<Napi::Object>(), a);
  Napi::Value sinks = o.Get("sinks");
  if (sinks.IsTypedArray()) {
    Napi::Float32Array s = sinks.As<Napi::Float32Array>();
    if (int(s.ElementLength()) != a.numHeads) throw Napi::RangeError::New(o.Env(), "sinks must have numHeads entries");
    a.sinks.assign(s.Data(), s.Data() + s.ElementLength());
  }
  Napi::Value slopes = o.Get("alibiSlopes");
  if (slopes.IsTypedArray()) {
    Napi::Float32Array s = slopes.As<Napi::Float32Array>();
    if (int(s.ElementLength()) != a.numHeads)
      throw Napi::RangeError::New(o.Env(), "alibiSlopes must have numHeads entries");
    a.alibiSlopes.assign(s.Data(), s.Data() + s.ElementLength());
  }
  if (a.numHeads < 1 || a.numKvHeads < 1 || a.numHeads % a.numKvHeads || a.headDim < 1 || a.headDim > 256 ||
      a.headDimV < 1 || a.headDimV > 256 || a.cuSeqlensQ.back() != a.totalQ || a.cuSeqlensK.back() != a.totalK)
    throw Napi::RangeError::New(o.Env(), "inconsistent attention arguments");
  return a;
}

}  // namespace addon
