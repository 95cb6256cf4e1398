/**
 * The WebAssembly engine for Node: the kernel built by scripts/build-wasm.mjs into build/wasm/,
 * found relative to this module (dist/wasm/backend.js and src/wasm/backend.ts both reach
 * ../../build/wasm/), and a worker_threads pool. A browser entry would pass its own Platform
 * (fetch, Web Workers) and files to createWasmBackendWith.
 */
import type { Backend } from '../backend.js';
import { createWasmBackendWith, type WasmBackendOptions, type WasmFiles } from './core.js';
import { nodePlatform } from './platform-node.js';

export type { WasmBackendOptions } from './core.js';

export const wasmFiles: WasmFiles = {
  baseline: new URL('../../build/wasm/flashattn.wasm', import.meta.url),
  relaxed: new URL('../../build/wasm/flashattn-relaxed.wasm', import.meta.url),
};

export function createWasmBackend(opts: WasmBackendOptions = {}): Promise<Backend> {
  return createWasmBackendWith(nodePlatform, wasmFiles, opts);
}
