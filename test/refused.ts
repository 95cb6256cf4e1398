// The bad-input rule shared by the validation suites: a call is refused with the right error class and a
// message of the library's form, and nothing reached the engine (a spy's call count did not move).
import { expect } from 'vitest';

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
