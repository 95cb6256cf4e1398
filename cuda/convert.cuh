// float32 <-> the kernels' element types, in device code (round to nearest even), shared by the
// small kernels (aux_kernels.cu, fixup.cu).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace fa {

template <typename T>
__device__ __forceinline__ float toF(T x);
template <>
__device__ __forceinline__ float toF<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ float toF<__half>(__half x) {
  return __half2float(x);
}
template <>
__device__ __forceinline__ float toF<__nv_bfloat16>(__nv_bfloat16 x) {
  return __bfloat162float(x);
}
template <typename T>
__device__ __forceinline__ T fromF(float x);
template <>
__device__ __forceinline__ float fromF<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ __half fromF<__half>(float x) {
  return __float2half_rn(x);
}
template <>
__device__ __forceinline__ __nv_bfloat16 fromF<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}

}  // namespace fa
