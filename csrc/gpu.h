// The process-wide GPU context of the addon: one stream, one lock that serialises GPU work
// (calls run one at a time on worker threads), and pinned staging buffers for host<->device
// copies. Everything is created lazily, on the first call that needs the GPU.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <mutex>
#include <string>

#include "status.h"  // fa::cudaMessage, FA_TRY

namespace addon {

class Gpu {
 public:
  static Gpu& get();
  // Creates the stream and staging buffers once; call with lock() held. Empty string on success.
  std::string init();
  std::mutex& lock() { return mu_; }
  cudaStream_t stream() const { return stream_; }
  // Chunked, double-buffered copies through pinned memory; both return after the data is in place.
  std::string upload(void* dst, const void* src, size_t bytes);
  std::string download(void* dst, const void* src, size_t bytes);
  // Enqueues an upload of a small buffer; completes in stream order (the staging is reused only after).
  cudaError_t uploadAsync(void* dst, const void* src, size_t bytes);

 private:
  static constexpr size_t kChunk = 8u << 20;
  std::mutex mu_;
  bool ready_ = false;
  cudaStream_t stream_ = nullptr;
  void* pinned_[2] = {nullptr, nullptr};
  cudaEvent_t done_[2] = {nullptr, nullptr};
};

}  // namespace addon
