#include "gpu.h"

#include <cstring>

namespace addon {

std::string cudaMessage(cudaError_t e, const char* what) {
  return std::string(what) + " failed: " + cudaGetErrorName(e) + ": " + cudaGetErrorString(e);
}

#define TRY(expr, what)                                  \
  do {                                                   \
    cudaError_t e_ = (expr);                             \
    if (e_ != cudaSuccess) return cudaMessage(e_, what); \
  } while (0)

Gpu& Gpu::get() {
  // Never destroyed: tearing CUDA objects down after the runtime has unloaded at exit would fail.
  static Gpu* gpu = new Gpu();
  return *gpu;
}

std::string Gpu::init() {
  if (ready_) return "";
  int count = 0;
  TRY(cudaGetDeviceCount(&count), "cudaGetDeviceCount");
  if (count == 0) return "no CUDA device";
  TRY(cudaSetDevice(0), "cudaSetDevice");
  TRY(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
  // Keep up to 1 GiB of freed memory in the stream-ordered pool instead of returning it at
  // every synchronisation: temporaries of repeated calls then cost no allocation.
  cudaMemPool_t pool;
  TRY(cudaDeviceGetDefaultMemPool(&pool, 0), "cudaDeviceGetDefaultMemPool");
  uint64_t keep = 1ull << 30;
  TRY(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep), "cudaMemPoolSetAttribute");
  for (int i = 0; i < 2; ++i) {
    TRY(cudaMallocHost(&pinned_[i], kChunk), "cudaMallocHost (staging)");
    TRY(cudaEventCreateWithFlags(&done_[i], cudaEventDisableTiming), "cudaEventCreate");
  }
  ready_ = true;
  return "";
}

std::string Gpu::upload(void* dst, const void* src, size_t bytes) {
  for (size_t off = 0, n = 0; off < bytes; off += n) {
    const int slot = int((off / kChunk) & 1);
    n = bytes - off < kChunk ? bytes - off : kChunk;
    // The slot's previous copy must have left the staging buffer before it is refilled.
    TRY(cudaEventSynchronize(done_[slot]), "cudaEventSynchronize (upload)");
    std::memcpy(pinned_[slot], static_cast<const char*>(src) + off, n);
    TRY(cudaMemcpyAsync(static_cast<char*>(dst) + off, pinned_[slot], n, cudaMemcpyHostToDevice, stream_),
        "cudaMemcpyAsync (upload)");
    TRY(cudaEventRecord(done_[slot], stream_), "cudaEventRecord");
  }
  TRY(cudaStreamSynchronize(stream_), "cudaStreamSynchronize (upload)");
  return "";
}

cudaError_t Gpu::uploadAsync(void* dst, const void* src, size_t bytes) {
  // Small buffers only (the work list): larger ones go through upload().
  for (size_t off = 0, n = 0; off < bytes; off += n) {
    const int slot = int((off / kChunk) & 1);
    n = bytes - off < kChunk ? bytes - off : kChunk;
    if (cudaError_t e = cudaEventSynchronize(done_[slot]); e != cudaSuccess) return e;
    std::memcpy(pinned_[slot], static_cast<const char*>(src) + off, n);
    if (cudaError_t e = cudaMemcpyAsync(static_cast<char*>(dst) + off, pinned_[slot], n, cudaMemcpyHostToDevice, stream_);
        e != cudaSuccess)
      return e;
    if (cudaError_t e = cudaEventRecord(done_[slot], stream_); e != cudaSuccess) return e;
  }
  return cudaSuccess;
}

std::string Gpu::download(void* dst, const void* src, size_t bytes) {
  // Chunk i is copied device->pinned while chunk i-1 is copied pinned->host.
  const size_t chunks = (bytes + kChunk - 1) / kChunk;
  for (size_t c = 0; c <= chunks; ++c) {
    if (c < chunks) {
      const int slot = int(c & 1);
      const size_t off = c * kChunk, n = bytes - off < kChunk ? bytes - off : kChunk;
      TRY(cudaEventSynchronize(done_[slot]), "cudaEventSynchronize (download)");
      TRY(cudaMemcpyAsync(pinned_[slot], static_cast<const char*>(src) + off, n, cudaMemcpyDeviceToHost, stream_),
          "cudaMemcpyAsync (download)");
      TRY(cudaEventRecord(done_[slot], stream_), "cudaEventRecord");
    }
    if (c > 0) {
      const size_t prev = c - 1;
      const int slot = int(prev & 1);
      const size_t off = prev * kChunk, n = bytes - off < kChunk ? bytes - off : kChunk;
      TRY(cudaEventSynchronize(done_[slot]), "cudaEventSynchronize (download)");
      std::memcpy(static_cast<char*>(dst) + off, pinned_[slot], n);
    }
  }
  return "";
}

}  // namespace addon
