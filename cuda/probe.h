// The GPU's idle time between back-to-back kernels on one stream, for benchmarks (bench/gpu/gaps.mjs):
// `n` launches of a kernel whose every block spins `spinNs` on the global timer; each launch records
// its earliest block start (after waitPriorGrid) and latest block end, so the gap before launch i is
// start[i] - end[i - 1]. With programmatic dependent launch (launch.h) the next kernel's blocks may be
// resident before the previous kernel ends, and the gap is then only its completion and flush.
// Host launcher only; no N-API types.
#pragma once
#include <cuda_runtime.h>

#include <string>
#include <vector>

namespace fa {

struct GapProbe {
  int launches = 50;
  int blocks = 132;
  unsigned spinNs = 20000;
  bool dependent = true;    // the PDL attribute, as the attention kernels are launched
  size_t allocBetween = 0;  // > 0: a cudaMallocAsync / cudaFreeAsync of these bytes between launches
};

// Runs the probe on `stream` and waits for it; gapsUs gets launches - 1 gaps in microseconds.
std::string probeGaps(const GapProbe& g, cudaStream_t stream, std::vector<double>* gapsUs);

}  // namespace fa
