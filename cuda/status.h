// CUDA statuses as error strings, for the planner (cuda/) and the addon (csrc/) alike: no code
// here exits or throws; a failed call returns its message and the addon rejects the promise with it.
#pragma once
#include <cuda_runtime.h>

#include <string>

namespace fa {

// "<what> failed: <status name>: <status text>".
inline std::string cudaMessage(cudaError_t e, const char* what) {
  return std::string(what) + " failed: " + cudaGetErrorName(e) + ": " + cudaGetErrorString(e);
}

}  // namespace fa

// In a function returning std::string (empty = success): returns the message when expr fails.
#define FA_TRY(expr, what)                                                     \
  do {                                                                         \
    cudaError_t fa_status_ = (expr);                                           \
    if (fa_status_ != cudaSuccess) return ::fa::cudaMessage(fa_status_, what); \
  } while (0)
