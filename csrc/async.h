// Waiting for the GPU off the JavaScript thread: `queueWait` runs `work` on a libuv worker thread
// (it may block, e.g. on an event or the stream) and settles a promise on the JavaScript thread:
// rejected with the error message, or resolved with what `value` builds (undefined by default).
// The context is held until the promise settles.
#pragma once
#include <napi.h>

#include <functional>
#include <memory>
#include <string>

namespace addon {

struct Context;

Napi::Promise queueWait(Napi::Env env, std::shared_ptr<Context> ctx, const char* name,
                        std::function<std::string()> work, std::function<Napi::Value(Napi::Env)> value = nullptr);

}  // namespace addon
