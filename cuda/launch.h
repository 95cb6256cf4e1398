// Programmatic dependent launch (Hopper): the kernels of consecutive calls on a stream overlap the
// next kernel's launch with the previous one's tail. A kernel launched with launchDependent may
// start its blocks once every block of the kernel before it on the stream has passed allowNextGrid
// (or exited); it then waits in waitPriorGrid, before its first global read, until that kernel has
// finished and its writes are visible. So stream order is kept; only the launch gap goes. Before
// sm_90 the attribute is not set and both device calls are no-ops.
#pragma once
#include <cuda_runtime.h>

#include <utility>

namespace fa {

__device__ __forceinline__ void waitPriorGrid() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

__device__ __forceinline__ void allowNextGrid() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

// Whether device 0 takes the launch attribute (compute capability 9.0 or newer), asked once.
bool dependentLaunchSupported();

// kernel<<<grid, block, smem, stream>>>(args...), allowed to overlap the kernel before it (above).
template <typename... Params, typename... Args>
cudaError_t launchDependent(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                            Args&&... args) {
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = dependentLaunchSupported() ? 1 : 0;
  return cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...);
}

}  // namespace fa
