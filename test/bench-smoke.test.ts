/**
 * Smoke test of the CPU benchmark (`flashattn bench --quick --only D`): it runs every implementation
 * that loads on a tiny iteration count and must verify every output. No timing assertions.
 */
import { describe, expect, it } from 'vitest';
import { runBench } from '../src/cli/bench.js';

describe('flashattn bench (CPU)', () => {
  it('runs workload D quickly, prints GFLOP/s and verifies every output', async () => {
    const lines: string[] = [];
    await runBench(['--quick', '--only', 'D'], (l) => lines.push(l));
    const text = lines.join('\n');
    expect(text).toMatch(/load average/);
    expect(lines.some((l) => /^ {2}D [12]t .*GFLOP\/s .*✓/.test(l))).toBe(true);
    expect(text).toMatch(/\| D \| 1 \|/);
    expect(text).toMatch(/verification: every output matched the float64 reference/);
    expect(text).not.toMatch(/MISMATCH/);
  }, 60_000);
});
