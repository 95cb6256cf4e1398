/**
 * The page's side of the reference check. The float64 reference is slow on purpose (4096 x 4096
 * causal took ~14 s), so it runs in a module worker (check-worker.ts) and the page stays usable;
 * past a work budget only a random sample of query rows is checked, each row exactly.
 */

export interface CheckRequest {
  lq: number;
  lk: number;
  heads: number;
  dim: number;
  causal: boolean;
  left: number;
  right: number;
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  /** The engine's output, `[lq, heads, dim]`. */
  out: Float32Array;
  /** Query rows to check, ascending; null = all (one reference call on the whole problem). */
  rows: Int32Array | null;
}

export type CheckMessage =
  | { type: 'progress'; done: number; total: number }
  | { type: 'done'; maxError: number; rows: number; worstRow: number }
  | { type: 'error'; message: string };

export interface CheckResult {
  maxError: number;
  rows: number;
  worstRow: number;
  ms: number;
}

/**
 * What the check may spend, in (kept pair x head x head dim) units: the whole problem in one
 * reference call runs at ~5 ns a unit in Chromium, a row at a time ~11 ns (each call decodes its
 * own key slice), so both budgets come to ~1-2 s.
 */
export const CHECK_BUDGET = { all: 2.5e8, sample: 1e8 };

/**
 * Null when checking every row fits the budget, else sorted distinct rows: the first and last
 * (edge rows are where masks go wrong) plus random ones, as many as the budget pays for.
 */
export function sampleRows(
  lq: number,
  kept: number,
  heads: number,
  dim: number,
  budget = CHECK_BUDGET,
  random = Math.random,
): Int32Array | null {
  if (kept * heads * dim <= budget.all) return null;
  const perRow = Math.max(1, (kept / Math.max(lq, 1)) * heads * dim);
  const n = Math.max(2, Math.floor(budget.sample / perRow));
  if (n >= lq) return null;
  const picked = new Set<number>([0, lq - 1]);
  while (picked.size < n) picked.add(Math.floor(random() * lq));
  return Int32Array.from([...picked].sort((a, b) => a - b));
}

/** Runs one check in a fresh worker, terminated when it answers (a stale check never reports late). */
export function checkInWorker(
  req: CheckRequest,
  onProgress: (done: number, total: number) => void,
): Promise<CheckResult> {
  const worker = new Worker(new URL('./check-worker.js', import.meta.url), {
    type: 'module',
    name: 'flashattn reference check',
  });
  const t0 = performance.now();
  return new Promise<CheckResult>((resolve, reject) => {
    worker.onmessage = (ev: MessageEvent<CheckMessage>) => {
      const m = ev.data;
      if (m.type === 'progress') {
        onProgress(m.done, m.total);
        return;
      }
      worker.terminate();
      if (m.type === 'done')
        resolve({ maxError: m.maxError, rows: m.rows, worstRow: m.worstRow, ms: performance.now() - t0 });
      else reject(new Error(m.message));
    };
    worker.onerror = (ev) => {
      worker.terminate();
      reject(new Error(`the check worker failed: ${ev.message || 'it did not load'}`));
    };
    worker.postMessage(req);
  });
}
