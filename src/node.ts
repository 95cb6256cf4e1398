/** The Node entry's engines: the CUDA addon, then WebAssembly on worker_threads. */
import { createEngineWith, type Loaders } from './engine.js';
import type { Engine, EngineOptions } from './types.js';

const nodeLoaders: Loaders = {
  cuda: async () => (await import('./cuda/backend.js')).loadCudaBackend(),
  wasm: async (o) => (await import('./wasm/backend.js')).createWasmBackend({ threads: o.threads }),
};

/** Creates an engine: 'auto' (default) picks cuda when the addon loads and sees a GPU, else wasm (saying why). */
export function createEngine(options: EngineOptions = {}): Promise<Engine> {
  return createEngineWith(nodeLoaders, options);
}
