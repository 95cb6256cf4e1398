/**
 * The CUDA kernel's other paths, each selected by debug knobs (environment variables read per
 * call; see envOverrides in backend.ts and FLASHATTN_CUDA_ORDER / FLASHATTN_CUDA_EPILOGUE in
 * cuda/forward.cu). The GPU check (bench/gpu/check.mjs) and the cuda engine tests run the shared
 * conformance cases through the default plan and then through each of these.
 */
export const cudaKernelPaths: readonly (readonly [name: string, env: Readonly<Record<string, string>>])[] = [
  ['no split', { FLASHATTN_CUDA_SPLITS: '1' }],
  ['3 splits', { FLASHATTN_CUDA_SPLITS: '3' }],
  ['small tile', { FLASHATTN_CUDA_TILE: 'small' }],
  ['main tile', { FLASHATTN_CUDA_TILE: 'main', FLASHATTN_CUDA_SPLITS: '1' }],
  // On an sm_90 GPU the default plan runs the fast path on the Hopper kernel (cuda/fwd_wgmma.cuh);
  // this is the default plan on the mma.sync kernel instead.
  ['mma.sync kernel', { FLASHATTN_CUDA_WGMMA: '0' }],
  // The other block orders (cuda/work_order.h): blocks read their unit from the list, so any
  // order must give the same results.
  ['longest-first order', { FLASHATTN_CUDA_ORDER: 'longest', FLASHATTN_CUDA_SPLITS: '3' }],
  ['cluster order', { FLASHATTN_CUDA_ORDER: 'clusters' }],
  // The kernel's other output path (O staged in shared memory; the default stores from registers).
  ['staged epilogue', { FLASHATTN_CUDA_EPILOGUE: 'staged', FLASHATTN_CUDA_SPLITS: '1' }],
];

/** Every knob the paths set, to clear between them. */
export const cudaKnobs: readonly string[] = [...new Set(cudaKernelPaths.flatMap(([, env]) => Object.keys(env)))];
