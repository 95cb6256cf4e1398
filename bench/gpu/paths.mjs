// The CUDA kernel's other paths, each a set of knob changes (src/knobs.ts, applied with setKnobs):
// the GPU check (check.mjs) and the cuda engine tests (test/cuda-engine.test.ts) run the shared
// conformance cases through the default plan and then through each of these. One list for both,
// in plain JavaScript because check.mjs runs with Node alone from dist/ (types: paths.d.mts).
export const cudaKernelPaths = [
  ['no split', { cudaSplits: 1 }],
  ['3 splits', { cudaSplits: 3 }],
  ['small tile', { cudaTile: 'small' }],
  ['main tile', { cudaTile: 'main', cudaSplits: 1 }],
  // On an sm_90 GPU the default plan runs the fast path on the Hopper kernel (cuda/fwd_wgmma.cuh);
  // this is the default plan on the mma.sync kernel instead.
  ['mma.sync kernel', { cudaWgmma: false }],
  // The other block orders (cuda/work_order.h): blocks read their unit from the list, so any
  // order must give the same results.
  ['longest-first order', { cudaOrder: 'longest', cudaSplits: 3 }],
  ['cluster order', { cudaOrder: 'clusters' }],
];
