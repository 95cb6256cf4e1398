// Types of paths.mjs, for the vitest suites that import it.
import type { Knobs } from '../../src/knobs.js';

export declare const cudaKernelPaths: readonly (readonly [name: string, changes: Readonly<Partial<Knobs>>])[];
