// Shared by the validation suites: a spy engine that counts the calls reaching it, a filled host tensor, and
// the bad-input rule (a call is refused with the right error class and a message of the library's form, and
// nothing reached the engine: the spy's count did not move).
import { expect } from 'vitest';
import type { Backend } from '../src/backend.js';
import { engineFromBackend } from '../src/engine.js';
import type { DType, Engine, Tensor } from '../src/types.js';

/** An engine whose backend throws if a call reaches it; `calls()` counts those that did. */
export function spyEngine(): { spy: Backend; engine: Engine; calls: () => number } {
  let n = 0;
  const spy: Backend = {
    name: 'wasm',
    threads: 1,
    info: {},
    unsupported: () => null,
    run: async () => {
      n++;
      throw new Error('the engine must not be reached');
    },
    dispose: async () => {},
  };
  return { spy, engine: engineFromBackend(spy), calls: () => n };
}

/** A host tensor of `shape` filled with 0.5 (never zeros). */
export const T = (shape: number[], dtype: DType = 'float32'): Tensor => {
  const n = shape.reduce((a, b) => a * b, 1);
  return { data: dtype === 'float32' ? new Float32Array(n).fill(0.5) : new Uint16Array(n).fill(0x3800), shape, dtype };
};

export async function expectRefused(
  call: () => Promise<unknown>,
  cls: new (...args: never[]) => Error,
  message: RegExp,
  calls: () => number,
): Promise<void> {
  const before = calls();
  const err = await call().then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(cls);
  expect((err as Error).message).toMatch(message);
  expect((err as Error).message).toMatch(/^Expected .* for .* but received/);
  expect(calls()).toBe(before);
}
