// Host time per part of an attention call, for benchmarks (bench/gpu/kvprof.mjs --parts): where a
// decode step's microseconds go on the CPU. Off unless the addon's hostProfile(true) turned it on;
// then every part of a call adds the time since the previous part ended. Only the JavaScript thread
// calls lap(), so there is no lock.
#pragma once
#include <chrono>

namespace fa {

enum HostPart {
  kPartParse,     // the args object read into ForwardArgs (addon)
  kPartOperands,  // q, k, v, out, lse (and kNew, vNew) resolved or uploaded (addon)
  kPartChoose,    // the kernel choice and its tile configuration
  kPartPlan,      // the plan key, the cache lookup (and a fresh plan with its upload)
  kPartPaging,    // a paged call's block table and offsets gathered into one host array
  kPartAlloc,     // the call's slab of temporaries (cudaMallocAsync)
  kPartUpload,    // the paged call's upload
  kPartParams,    // the kernel parameters
  kPartWrite,     // launching the KV cache write
  kPartKernel,    // launching the attention kernel (and any conversion)
  kPartCombine,   // launching the split combine and the out conversion
  kPartFixup,     // deciding and launching the fix-up
  kPartFree,      // the temporaries given back (cudaFreeAsync)
  kPartResult,    // the result object (addon)
  kHostParts
};

inline const char* hostPartName(int p) {
  static const char* names[kHostParts] = {"parse",  "operands", "choose", "plan",    "paging", "alloc", "upload",
                                          "params", "write",    "kernel", "combine", "fixup",  "free",  "result"};
  return names[p];
}

struct HostClock {
  bool on = false;
  double us[kHostParts] = {};
  long calls = 0;
  std::chrono::steady_clock::time_point last;
  void start() {
    if (on) last = std::chrono::steady_clock::now(), ++calls;
  }
  void lap(HostPart p) {
    if (!on) return;
    const auto t = std::chrono::steady_clock::now();
    us[p] += std::chrono::duration<double, std::micro>(t - last).count();
    last = t;
  }
  void reset() {
    for (double& u : us) u = 0;
    calls = 0;
  }
};

// The process's clock (forward.cu).
HostClock& hostClock();

}  // namespace fa
