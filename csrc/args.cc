#include "args.h"

#include <cmath>
#include <string>
#include <vector>

namespace addon {
namespace {

template <typename A>
A typedArrayOf(const Napi::Value& v, napi_typedarray_type type, const char* what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type)
    throw Napi::TypeError::New(v.Env(),
                               std::string("Expected ") + what + " (the packed arguments of src/cuda/pack.ts)");
  return v.As<A>();
}

// A slot that must hold an int32.
int intAt(const double* s, int slot, Napi::Env env) {
  const double x = s[slot];
  if (!(x >= -2147483648.0 && x <= 2147483647.0) || x != std::floor(x))
    throw Napi::RangeError::New(env, "packed argument " + std::to_string(slot) + " is not an int32");
  return int(x);
}

}  // namespace

fa::DType parseDType(const Napi::Value& v) {
  const std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  if (s == "float32") return fa::DType::F32;
  if (s == "float16") return fa::DType::F16;
  if (s == "bfloat16") return fa::DType::BF16;
  throw Napi::TypeError::New(v.Env(), "Expected 'float32', 'float16' or 'bfloat16' for args.dtype");
}

fa::ForwardArgs parseForwardArgs(const Napi::Value& numbers, const Napi::Value& ints, bool* returnLse) {
  Napi::Env env = numbers.Env();
  Napi::Float64Array nf = typedArrayOf<Napi::Float64Array>(numbers, napi_float64_array, "a Float64Array of numbers");
  Napi::Int32Array ni = typedArrayOf<Napi::Int32Array>(ints, napi_int32_array, "an Int32Array of offsets");
  if (nf.ElementLength() < kSlots) throw Napi::RangeError::New(env, "too few packed numbers");
  const double* s = nf.Data();
  const int* in = ni.Data();
  const size_t nInts = ni.ElementLength();
  auto get = [&](int slot) { return intAt(s, slot, env); };
  fa::ForwardArgs a;
  const int dt = get(kDtype);
  if (dt < 0 || dt > 2) throw Napi::TypeError::New(env, "Expected a dtype code 0, 1 or 2");
  a.dtype = fa::DType(dt);
  const int batch = get(kBatch);
  a.totalQ = get(kTotalQ);
  a.totalK = get(kTotalK);
  a.maxSeqlenQ = get(kMaxSeqlenQ);
  a.numHeads = get(kNumHeads);
  a.numKvHeads = get(kNumKvHeads);
  a.headDim = get(kHeadDim);
  a.headDimV = get(kHeadDimV);
  a.windowLeft = get(kWindowLeft);
  a.windowRight = get(kWindowRight);
  a.softmaxScale = float(s[kSoftmaxScale]);
  a.softcap = float(s[kSoftcap]);
  a.fixedSeqlenQ = get(kFixedSeqlenQ);
  *returnLse = s[kReturnLse] != 0;
  a.poison = s[kPoison] != 0;
  a.float32AsHalf = s[kFloat32AsHalf] != 0;
  // The planner's knobs (src/knobs.ts, read once there), passed with every call.
  a.forceSplits = get(kForceSplits);
  a.forceTile = get(kForceTile);
  a.wgmma = s[kWgmma] != 0;
  const int order = get(kOrder);
  a.order = order == 1   ? fa::WorkOrder::Longest
            : order == 2 ? fa::WorkOrder::Clusters
            : order == 3 ? fa::WorkOrder::Hybrid
                         : fa::WorkOrder::Auto;
  const int numSinks = get(kNumSinks), numSlopes = get(kNumSlopes);
  if (numSinks < 0 || numSlopes < 0 || nf.ElementLength() != size_t(kSlots) + numSinks + numSlopes)
    throw Napi::RangeError::New(env, "the packed numbers have the wrong length");
  if ((numSinks && numSinks != a.numHeads) || (numSlopes && numSlopes != a.numHeads))
    throw Napi::RangeError::New(env, "sinks and alibiSlopes must have numHeads entries");
  for (int h = 0; h < numSinks; ++h) a.sinks.push_back(float(s[kSlots + h]));
  for (int h = 0; h < numSlopes; ++h) a.alibiSlopes.push_back(float(s[kSlots + numSinks + h]));
  const bool paged = s[kPaged] != 0;
  const int totalNew = paged ? get(kTotalNew) : -1;
  a.maxBlocks = paged ? get(kMaxBlocks) : 0;
  a.blockSize = paged ? get(kBlockSize) : 0;
  const double rows = s[kPoolRows];
  const size_t table = size_t(batch) * size_t(a.maxBlocks < 0 ? 0 : a.maxBlocks);
  if (batch < 0 || a.maxBlocks < 0 ||
      nInts != table + 2 * (size_t(batch) + 1) + (totalNew >= 0 ? 2 * size_t(batch) + 1 : 0))
    throw Napi::RangeError::New(env, "the packed offsets have the wrong length for the batch");
  const int* cuK = in + table;
  const int* cuNew = cuK + batch + 1;
  const int* cached = cuNew + batch + 1;
  const int* cuQ = totalNew >= 0 ? cached + batch : cuNew;
  a.cuSeqlensQ.assign(cuQ, cuQ + batch + 1);
  a.cuSeqlensK.assign(cuK, cuK + batch + 1);
  if (a.numHeads < 1 || a.numKvHeads < 1 || a.numHeads % a.numKvHeads || a.headDim < 1 || a.headDim > 256 ||
      a.headDimV < 1 || a.headDimV > 256 || a.cuSeqlensQ[0] != 0 || a.cuSeqlensK[0] != 0 ||
      a.cuSeqlensQ.back() != a.totalQ || a.cuSeqlensK.back() != a.totalK)
    throw Napi::RangeError::New(env, "inconsistent attention arguments");
  if (!paged) return a;

  a.paged = true;
  a.paging = in;
  a.pagingInts = nInts;
  if (a.blockSize < 1 || !(rows >= 1 && rows < 2147483648.0))
    throw Napi::RangeError::New(env, "Expected a block table of batch x maxBlocks entries and a pool of rows");
  a.poolRows = int64_t(rows);
  if (totalNew >= 0) {  // the call's own write, enqueued before its reads
    a.totalNew = totalNew;
    a.cuSeqlensNew.assign(cuNew, cuNew + batch + 1);
    a.cacheSeqlens.assign(cached, cached + batch);
    if (a.cuSeqlensNew[0] != 0 || a.cuSeqlensNew.back() != a.totalNew)
      throw Napi::RangeError::New(env, "Expected the write's cuSeqlensNew [batch + 1] and cacheSeqlens [batch]");
    for (int b = 0; b < batch; ++b)
      if (a.cacheSeqlens[b] < 0 || a.cuSeqlensNew[b + 1] < a.cuSeqlensNew[b] ||
          int64_t(a.cacheSeqlens[b]) + a.cuSeqlensNew[b + 1] - a.cuSeqlensNew[b] !=
              a.cuSeqlensK[b + 1] - a.cuSeqlensK[b])
        throw Napi::RangeError::New(env, "the write's lengths do not add up to the keys of the call");
  }
  // The façade checked every block a sequence reads; this only keeps a wrong call off the GPU.
  const int64_t numBlocks = a.poolRows / a.blockSize;
  for (int b = 0; b < batch; ++b) {
    const int64_t lk = int64_t(cuK[b + 1]) - cuK[b], used = (lk + a.blockSize - 1) / a.blockSize;
    if (lk < 0 || used > a.maxBlocks) throw Napi::RangeError::New(env, "a sequence outgrows its block table");
    const int* row = in + size_t(b) * a.maxBlocks;
    int bad = 0;
    for (int64_t i = 0; i < used; ++i) bad |= row[i] | int(numBlocks - 1 - row[i]);
    if (bad < 0) throw Napi::RangeError::New(env, "a block id is outside the pool");
  }
  return a;
}

}  // namespace addon
