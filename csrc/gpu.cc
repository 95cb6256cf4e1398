#include "gpu.h"

#include <cstring>

#include "status.h"

namespace addon {

Gpu& Gpu::get() {
  // Never destroyed: tearing CUDA objects down after the runtime has unloaded at exit would fail.
  static Gpu* gpu = new Gpu();
  return *gpu;
}

std::string Gpu::init() {
  if (ready_) return "";
  int count = 0;
  FA_TRY(cudaGetDeviceCount(&count), "cudaGetDeviceCount");
  if (count == 0) return "no CUDA device";
  FA_TRY(cudaSetDevice(0), "cudaSetDevice");
  FA_TRY(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
  // Keep up to 1 GiB of freed memory in the stream-ordered pool instead of returning it at
  // every synchronisation: temporaries of repeated calls then cost no allocation.
  cudaMemPool_t pool;
  FA_TRY(cudaDeviceGetDefaultMemPool(&pool, 0), "cudaDeviceGetDefaultMemPool");
  uint64_t keep = 1ull << 30;
  FA_TRY(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep), "cudaMemPoolSetAttribute");
  for (int i = 0; i < 2; ++i) {
    FA_TRY(cudaMallocHost(&pinned_[i], kChunk), "cudaMallocHost (staging)");
    FA_TRY(cudaEventCreateWithFlags(&done_[i], cudaEventDisableTiming), "cudaEventCreate");
  }
  ready_ = true;
  return "";
}

std::string Gpu::upload(void* dst, const void* src, size_t bytes) {
  for (size_t off = 0, n = 0; off < bytes; off += n) {
    const int slot = int((off / kChunk) & 1);
    n = bytes - off < kChunk ? bytes - off : kChunk;
    // The slot's previous copy must have left the staging buffer before it is refilled.
    FA_TRY(cudaEventSynchronize(done_[slot]), "cudaEventSynchronize (upload)");
    std::memcpy(pinned_[slot], static_cast<const char*>(src) + off, n);
    FA_TRY(cudaMemcpyAsync(static_cast<char*>(dst) + off, pinned_[slot], n, cudaMemcpyHostToDevice, stream_),
           "cudaMemcpyAsync (upload)");
    FA_TRY(cudaEventRecord(done_[slot], stream_), "cudaEventRecord");
  }
  FA_TRY(cudaStreamSynchronize(stream_), "cudaStreamSynchronize (upload)");
  return "";
}

cudaError_t Gpu::uploadAsync(void* dst, const void* src, size_t bytes) {
  // Small buffers only (the work list): larger ones go through upload().
  for (size_t off = 0, n = 0; off < bytes; off += n) {
    const int slot = int((off / kChunk) & 1);
    n = bytes - off < kChunk ? bytes - off : kChunk;
    if (cudaError_t e = cudaEventSynchronize(done_[slot]); e != cudaSuccess) return e;
    std::memcpy(pinned_[slot], static_cast<const char*>(src) + off, n);
    if (cudaError_t e =
            cudaMemcpyAsync(static_cast<char*>(dst) + off, pinned_[slot], n, cudaMemcpyHostToDevice, stream_);
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
      FA_TRY(cudaEventSynchronize(done_[slot]), "cudaEventSynchronize (download)");
      FA_TRY(cudaMemcpyAsync(pinned_[slot], static_cast<const char*>(src) + off, n, cudaMemcpyDeviceToHost, stream_),
             "cudaMemcpyAsync (download)");
      FA_TRY(cudaEventRecord(done_[slot], stream_), "cudaEventRecord");
    }
    if (c > 0) {
      const size_t prev = c - 1;
      const int slot = int(prev & 1);
      const size_t off = prev * kChunk, n = bytes - off < kChunk ? bytes - off : kChunk;
      FA_TRY(cudaEventSynchronize(done_[slot]), "cudaEventSynchronize (download)");
      std::memcpy(static_cast<char*>(dst) + off, pinned_[slot], n);
    }
  }
  return "";
}

}  // namespace addon
