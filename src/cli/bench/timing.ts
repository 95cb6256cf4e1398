/** Min/median wall-clock timing with warm-up, shared by every implementation the benchmark runs. */

export interface TimingPolicy {
  warmup: number;
  minIters: number;
  maxIters: number;
  /** Keep iterating until this much time was spent (after minIters)... */
  minTimeMs: number;
  /** ...but stop once past this (with at least 2 iterations). */
  maxTimeMs: number;
}

export const FULL: TimingPolicy = { warmup: 2, minIters: 5, maxIters: 60, minTimeMs: 1500, maxTimeMs: 6000 };
export const QUICK: TimingPolicy = { warmup: 1, minIters: 2, maxIters: 3, minTimeMs: 0, maxTimeMs: 400 };

export interface Timing {
  /** milliseconds, in run order */
  times: number[];
  medianMs: number;
  minMs: number;
}

export function summarize(times: number[]): Timing {
  const s = [...times].sort((a, b) => a - b);
  const n = s.length;
  const medianMs = n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
  return { times, medianMs, minMs: s[0]! };
}

/** Whether another timed iteration is due after `times` (elapsed = their sum). */
export function wantMore(times: readonly number[], p: TimingPolicy): boolean {
  const n = times.length;
  if (n >= p.maxIters) return false;
  const spent = times.reduce((a, b) => a + b, 0);
  if (n >= 2 && spent >= p.maxTimeMs) return false;
  return n < p.minIters || spent < p.minTimeMs;
}

/**
 * Runs `fn` `warmup` times (the first result is kept for verification), then times it per the policy.
 * Returns the timing and the first result.
 */
export async function measure<T>(fn: () => Promise<T> | T, p: TimingPolicy): Promise<{ timing: Timing; result: T }> {
  let result!: T;
  for (let i = 0; i < Math.max(1, p.warmup); i++) {
    const r = await fn();
    if (i === 0) result = r;
  }
  const times: number[] = [];
  while (wantMore(times, p)) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  return { timing: summarize(times), result };
}
