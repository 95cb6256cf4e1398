/** The Node entry: the shared API (api.ts) and the createEngine of src/node.ts (cuda addon, then wasm on worker_threads). */
export * from './api.js';
export { createEngine } from './node.js';
