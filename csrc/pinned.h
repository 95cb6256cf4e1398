// Page-locked host memory handed to JavaScript (engine.hostTensor): an external ArrayBuffer over a
// cudaMallocHost block. Copies from and into such an array skip the pinned staging (csrc/context.h):
// one DMA on the stream, no memcpy on the host, so a call from these arrays moves at the link's rate.
//
// A block records an event after each copy it takes part in (per stream), and is freed only once
// they have run: an array collected while a copy from it is still queued is safe to free.
#pragma once
#include <cuda_runtime.h>
#include <napi.h>

#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace addon {

class PinnedBlock {
 public:
  PinnedBlock(char* ptr, size_t bytes) : ptr_(ptr), bytes_(bytes) {}
  ~PinnedBlock();
  PinnedBlock(const PinnedBlock&) = delete;
  PinnedBlock& operator=(const PinnedBlock&) = delete;
  char* data() const { return ptr_; }
  size_t bytes() const { return bytes_; }
  // A copy touching this block was enqueued on `stream`: the block outlives it.
  std::string used(cudaStream_t stream);
  // Waits for every copy enqueued so far (before the block is handed out again).
  void drain();

 private:
  char* ptr_;
  size_t bytes_;
  std::mutex mu_;
  std::vector<std::pair<cudaStream_t, cudaEvent_t>> uses_;
};

// The live block that holds all of [p, p + bytes), or null (pageable memory, or a range crossing
// a block's end). Thread-safe.
std::shared_ptr<PinnedBlock> pinnedBlockOf(const void* p, size_t bytes);

// Bytes held by live blocks (tests check that collected arrays give theirs back).
size_t livePinnedBytes();

// (bytes, result?) -> ArrayBuffer of zeroed page-locked memory, freed when the garbage collector
// takes it. result: for a call's result (its copy fills it), from a pool of collected results' blocks,
// not zeroed, and undefined once 4 GiB of results are alive or none can be had (a plain array then).
Napi::Value HostArray(const Napi::CallbackInfo& info);

// Frees the idle blocks of the result pool (an engine's dispose).
void freeIdlePinned();

}  // namespace addon
