#include "probe.h"

#include <cstdint>

#include "launch.h"
#include "status.h"

namespace fa {
namespace {

__device__ __forceinline__ unsigned long long globalTimer() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %globaltimer;" : "=l"(t));
  return t;
}

__global__ void probeKernel(unsigned long long* starts, unsigned long long* ends, int i, unsigned spinNs) {
  waitPriorGrid();
  allowNextGrid();
  const unsigned long long t0 = globalTimer();
  while (globalTimer() - t0 < spinNs) {
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    atomicMin(starts + i, t0);
    atomicMax(ends + i, globalTimer());
  }
}

}  // namespace

std::string probeGaps(const GapProbe& g, cudaStream_t st, std::vector<double>* gapsUs) {
  const int n = g.launches < 2 ? 2 : g.launches;
  unsigned long long* d = nullptr;
  FA_TRY(cudaMalloc(&d, sizeof(unsigned long long) * 2 * n), "cudaMalloc (probe)");
  std::vector<unsigned long long> h(2 * n);
  auto run = [&]() -> std::string {
    FA_TRY(cudaMemsetAsync(d, 0xFF, sizeof(unsigned long long) * n, st), "cudaMemsetAsync (probe)");
    FA_TRY(cudaMemsetAsync(d + n, 0, sizeof(unsigned long long) * n, st), "cudaMemsetAsync (probe)");
    for (int i = 0; i < n; ++i) {
      if (g.allocBetween && i > 0) {
        void* p = nullptr;
        FA_TRY(cudaMallocAsync(&p, g.allocBetween, st), "cudaMallocAsync (probe)");
        FA_TRY(cudaFreeAsync(p, st), "cudaFreeAsync (probe)");
      }
      if (g.dependent)
        FA_TRY(launchDependent(probeKernel, dim3(g.blocks), dim3(128), 0, st, d, d + n, i, g.spinNs), "probe launch");
      else {
        probeKernel<<<g.blocks, 128, 0, st>>>(d, d + n, i, g.spinNs);
        FA_TRY(cudaGetLastError(), "probe launch");
      }
    }
    FA_TRY(cudaMemcpyAsync(h.data(), d, sizeof(unsigned long long) * 2 * n, cudaMemcpyDeviceToHost, st),
           "cudaMemcpyAsync (probe)");
    FA_TRY(cudaStreamSynchronize(st), "the probe kernels");
    return "";
  };
  std::string err = run();
  cudaFree(d);
  if (!err.empty()) return err;
  gapsUs->clear();
  for (int i = 1; i < n; ++i) gapsUs->push_back((double(int64_t(h[i] - h[n + i - 1]))) / 1000.0);
  return "";
}

}  // namespace fa
