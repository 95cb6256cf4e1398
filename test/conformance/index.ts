/** The conformance suite as one module: what dist/test/conformance.js (scripts/build-conformance.mjs) holds. */
export * from './cases.js';
export * from './cross.js';
export * from './random.js';
export * from './run.js';
export * from './kvcache-cases.js';
export * from './kvcache.js';
export { callOptions, scenario } from '../kvcache-helpers.js';
