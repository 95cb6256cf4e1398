// The addon's calls on a context (calls.cc says what each takes and when it settles).
#pragma once
#include <napi.h>

namespace addon {

Napi::Value Attention(const Napi::CallbackInfo& info);
Napi::Value LastPlan(const Napi::CallbackInfo& info);
Napi::Value Upload(const Napi::CallbackInfo& info);
Napi::Value KvWrite(const Napi::CallbackInfo& info);
Napi::Value Merge(const Napi::CallbackInfo& info);
Napi::Value Download(const Napi::CallbackInfo& info);
Napi::Value AllocDevice(const Napi::CallbackInfo& info);
Napi::Value TimeAttention(const Napi::CallbackInfo& info);
Napi::Value CopyBandwidth(const Napi::CallbackInfo& info);  // bandwidth.cc
Napi::Value LaunchGaps(const Napi::CallbackInfo& info);     // bandwidth.cc

}  // namespace addon
