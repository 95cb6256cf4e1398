/**
 * Every switch of flashattn outside its API, in one place: the environment variables users may set
 * and the test hooks the suites use. The environment is read once, when this module loads; no
 * engine reads it per call. docs/knobs.md lists them.
 *
 * - FLASHATTN_BACKEND=auto|wasm|cuda: createEngine's default backend.
 * - FLASHATTN_WASM_SIMD=auto|relaxed|baseline: which build of the wasm kernel loads.
 * - FLASHATTN_CUDA_ADDON=<path>: a CUDA addon to load before any other.
 * - FLASHATTN_CUDA_SPLITS=<n>, FLASHATTN_CUDA_TILE=auto|main|small, FLASHATTN_CUDA_WGMMA=0,
 *   FLASHATTN_CUDA_ORDER=auto|longest|clusters|hybrid: the CUDA planner's choices forced, for
 *   benchmarks and for the tests that drive every kernel path with the same cases.
 *
 * A value that is not allowed is kept as an error that createEngine reports (never taken as the
 * default in silence).
 */

export interface Knobs {
  backend: 'auto' | 'wasm' | 'cuda';
  wasmSimd: 'auto' | 'relaxed' | 'baseline';
  cudaAddon: string | null;
  /** 0: the planner decides. */
  cudaSplits: number;
  cudaTile: 'auto' | 'main' | 'small';
  /** false keeps the mma.sync kernel on Hopper. */
  cudaWgmma: boolean;
  cudaOrder: 'auto' | 'longest' | 'clusters' | 'hybrid';
  /** Test hook: engines fill outputs with NaN before computing, so an element never written shows. */
  poisonOutputs: boolean;
}

const DEFAULTS: Knobs = {
  backend: 'auto',
  wasmSimd: 'auto',
  cudaAddon: null,
  cudaSplits: 0,
  cudaTile: 'auto',
  cudaWgmma: true,
  cudaOrder: 'auto',
  poisonOutputs: false,
};

/** The environment's values, with the errors of those not allowed. */
export function readKnobs(env: Record<string, string | undefined>): { knobs: Knobs; errors: string[] } {
  const knobs = { ...DEFAULTS };
  const errors: string[] = [];
  const pick = <K extends keyof Knobs>(key: K, name: string, allowed: readonly string[]) => {
    const v = env[name];
    if (v === undefined || v === '') return;
    if (allowed.includes(v)) knobs[key] = v as Knobs[K];
    else
      errors.push(`Expected ${allowed.map((a) => `'${a}'`).join(', ')} for ${name} but received ${JSON.stringify(v)}`);
  };
  pick('backend', 'FLASHATTN_BACKEND', ['auto', 'wasm', 'cuda']);
  pick('wasmSimd', 'FLASHATTN_WASM_SIMD', ['auto', 'relaxed', 'baseline']);
  pick('cudaTile', 'FLASHATTN_CUDA_TILE', ['auto', 'main', 'small']);
  pick('cudaOrder', 'FLASHATTN_CUDA_ORDER', ['auto', 'longest', 'clusters', 'hybrid']);
  if (env.FLASHATTN_CUDA_ADDON) knobs.cudaAddon = env.FLASHATTN_CUDA_ADDON;
  const splits = env.FLASHATTN_CUDA_SPLITS;
  if (splits !== undefined && splits !== '') {
    const n = Number(splits);
    if (Number.isInteger(n) && n >= 0 && n <= 1024) knobs.cudaSplits = n;
    else
      errors.push(
        `Expected an integer from 0 to 1024 for FLASHATTN_CUDA_SPLITS but received ${JSON.stringify(splits)}`,
      );
  }
  const wg = env.FLASHATTN_CUDA_WGMMA;
  if (wg !== undefined && wg !== '') {
    if (wg === '0' || wg === '1') knobs.cudaWgmma = wg === '1';
    else errors.push(`Expected '0' or '1' for FLASHATTN_CUDA_WGMMA but received ${JSON.stringify(wg)}`);
  }
  return { knobs, errors };
}

const read = readKnobs(typeof process !== 'undefined' && process.env ? process.env : {});
const current: Knobs = read.knobs;

/** The knobs in force. */
export const knobs: Readonly<Knobs> = current;

/** What the environment held that is not allowed (createEngine rejects with the first). */
export const knobErrors: readonly string[] = read.errors;

/**
 * Test hook: sets knobs (every test that drives one kernel path or poisons outputs goes through it)
 * and returns a function that restores the previous values.
 */
export function setKnobs(changes: Partial<Knobs>): () => void {
  const before = { ...current };
  Object.assign(current, changes);
  return () => {
    Object.assign(current, before);
  };
}
