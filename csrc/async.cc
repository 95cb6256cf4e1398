#include "async.h"

#include "context.h"

namespace addon {
namespace {

class Waiter : public Napi::AsyncWorker {
 public:
  Waiter(Napi::Env env, const char* name, std::shared_ptr<Context> ctx, std::function<std::string()> work,
         std::function<Napi::Value(Napi::Env)> value)
      : Napi::AsyncWorker(env, name),
        deferred_(Napi::Promise::Deferred::New(env)),
        ctx_(std::move(ctx)),
        work_(std::move(work)),
        value_(std::move(value)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute() override {
    std::string err = work_();
    if (!err.empty()) SetError(err);
  }
  void OnOK() override { deferred_.Resolve(value_ ? value_(Env()) : Env().Undefined()); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::shared_ptr<Context> ctx_;
  std::function<std::string()> work_;
  std::function<Napi::Value(Napi::Env)> value_;
};

}  // namespace

Napi::Promise queueWait(Napi::Env env, std::shared_ptr<Context> ctx, const char* name,
                        std::function<std::string()> work, std::function<Napi::Value(Napi::Env)> value) {
  auto* w = new Waiter(env, name, std::move(ctx), std::move(work), std::move(value));
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

}  // namespace addon
