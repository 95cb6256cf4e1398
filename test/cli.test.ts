// The CLI from the built package (dist/), as `npm start` and the GPU machine run it.
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

const cli = new URL('../dist/cli.js', import.meta.url).pathname;
const run = (...args: string[]) => execFileSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 120_000 });

describe('flashattn CLI (dist/, built by npm ci)', () => {
  it('demo draws the bottom-right picture, passes its check and times a packed batch', () => {
    const out = run('demo', '--threads', '1');
    expect(out).toContain('row 0 ███████████·········  keys 0..10');
    expect(out).toContain('row 9 ████████████████████  keys 0..19');
    expect(out).toMatch(/check against the float64 reference .* OK/);
    expect(out).toMatch(/tokens\/s, [\d.]+ GFLOP\/s/);
  });

  it('doctor lists the engines with reasons and runs the conformance cases', () => {
    const out = run('doctor', '--backend', 'wasm', '--threads', '2', '--filter', 'Lq=10 Lk=20');
    expect(out).toMatch(/wasm: loaded \(simd=/);
    expect(out).toMatch(/auto picks: (cuda|wasm)/);
    expect(out).toMatch(/doctor: [1-9]\d* passed, 0 failed/);
  });

  it('an unknown command fails with the usage', () => {
    expect(() => execFileSync(process.execPath, [cli, 'frobnicate'], { stdio: 'pipe' })).toThrow(/unknown command/);
  });
});
