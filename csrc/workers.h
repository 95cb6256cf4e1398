// The addon's asynchronous calls. Each runs its GPU work on a libuv worker thread
// (Napi::AsyncWorker) under the GPU lock and settles a promise: errors are stored as strings on
// the worker thread and become rejected promises with the CUDA message on the main thread.
#pragma once
#include <napi.h>

namespace addon {

Napi::Value Upload(const Napi::CallbackInfo& info);       // (TypedArray) -> Promise<DeviceBuffer>
Napi::Value Download(const Napi::CallbackInfo& info);     // (DeviceBuffer, TypedArray) -> Promise<void>
Napi::Value AllocDevice(const Napi::CallbackInfo& info);  // (bytes) -> Promise<DeviceBuffer>
// (args, q, k, v[, out, lse]): q, k, v are all DeviceBuffers or all TypedArrays; with typed
// array outputs the result is downloaded into them, otherwise device outputs are returned.
Napi::Value Attention(const Napi::CallbackInfo& info);

}  // namespace addon
