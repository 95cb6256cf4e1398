/** Seeded inputs: the same seed gives the same tensors on every engine and machine. */
export { randn, rng } from '../../src/cli/random.js';

/** A fresh seed, or FLASHATTN_SEED (a test knob: replays a failed run). */
export function freshSeed(): number {
  const env = typeof process !== 'undefined' ? process.env?.FLASHATTN_SEED : undefined;
  return env ? Number(env) >>> 0 : (Math.random() * 2 ** 32) >>> 0;
}
