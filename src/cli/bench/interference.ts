/**
 * How much CPU other processes used while we measured: the machine's busy time (os.cpus) minus this
 * process's own CPU time (its worker threads and onnxruntime's threads included), over wall time.
 * A two-thread number measured while others used a sizeable part of a core is not trustworthy.
 */
import os from 'node:os';

interface Snapshot {
  busyMs: number;
  ownMs: number;
  wallMs: number;
}

function snapshot(): Snapshot {
  let busy = 0;
  for (const c of os.cpus()) busy += c.times.user + c.times.nice + c.times.sys + c.times.irq;
  const own = process.cpuUsage();
  return { busyMs: busy, ownMs: (own.user + own.system) / 1000, wallMs: performance.now() };
}

/** Starts a window; the returned function gives the average number of cores others used since. */
export function othersCores(): () => number {
  const a = snapshot();
  return () => {
    const b = snapshot();
    const wall = b.wallMs - a.wallMs;
    if (wall <= 0) return 0;
    return Math.max(0, (b.busyMs - a.busyMs - (b.ownMs - a.ownMs)) / wall);
  };
}

/** Above this many cores used by others during a measurement, the result is flagged as disturbed. */
export const BUSY_CORES = 0.15;

/**
 * Waits until other processes use less than `threshold` cores over a `windowMs` window (this
 * process idle meanwhile), for at most `maxMs`. Resolves whether the machine became quiet.
 */
export async function waitQuiet(maxMs: number, threshold = 0.1, windowMs = 2000): Promise<boolean> {
  const t0 = performance.now();
  while (performance.now() - t0 < maxMs) {
    const w = othersCores();
    await new Promise((r) => setTimeout(r, windowMs));
    if (w() < threshold) return true;
  }
  return false;
}
