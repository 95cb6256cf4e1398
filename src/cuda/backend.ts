/** Loads the CUDA addon. Until it exists, says so: 'auto' then falls back to wasm with this reason. */
import type { Backend } from '../backend.js';

export async function loadCudaBackend(): Promise<Backend> {
  throw new Error('the CUDA addon is not built in this package (build/Release/flashattn_cuda.node not found)');
}
