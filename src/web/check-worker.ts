/** Module worker started by check.ts: compares the engine's output with the library's float64 reference. */
import { referenceAttentionVarlen, tensor } from '../browser.js';
import { visibleRange } from '../problem.js';
import type { CheckMessage, CheckRequest } from './check.js';

// tsconfig's lib is the page's (DOM); this is the part of a worker's global scope used here.
const scope = self as unknown as {
  onmessage: ((ev: MessageEvent<CheckRequest>) => void) | null;
  postMessage(m: CheckMessage): void;
};

/** The page's metric: relative error, absolute below 1, over `n` values from `at`. */
function maxError(got: Float32Array, want: Float64Array, at: number, n: number): number {
  let err = 0;
  for (let i = 0; i < n; i++) err = Math.max(err, Math.abs(got[at + i]! - want[i]!) / Math.max(1, Math.abs(want[i]!)));
  return Number.isNaN(err) ? Infinity : err;
}

function checkAll(r: CheckRequest): CheckMessage {
  const { lq, lk, heads, dim } = r;
  const ref = referenceAttentionVarlen(
    tensor(r.q, [lq, heads, dim]),
    tensor(r.k, [lk, heads, dim]),
    tensor(r.v, [lk, heads, dim]),
    { cuSeqlensQ: Int32Array.of(0, lq), cuSeqlensK: Int32Array.of(0, lk), causal: r.causal, window: [r.left, r.right] },
  );
  const row = heads * dim;
  let worst = 0,
    worstRow = -1;
  for (let i = 0; i < lq; i++) {
    const e = maxError(r.out, ref.out64.subarray(i * row, (i + 1) * row), i * row, row);
    if (e > worst || worstRow < 0) {
      worst = e;
      worstRow = i;
    }
  }
  return { type: 'done', maxError: worst, rows: lq, worstRow };
}

/**
 * One row's exact reference: attention of that query over exactly the keys its mask keeps, so the
 * reference runs on the kept slice with no mask (the slice is contiguous in [Lk, heads, dim], so
 * no copy). A row that keeps no key must come out zero, as docs/semantics.md says.
 */
function checkRows(r: CheckRequest, rows: Int32Array): CheckMessage {
  const { lq, lk, heads, dim } = r;
  const row = heads * dim;
  let worst = 0,
    worstRow = -1,
    last = performance.now();
  for (let n = 0; n < rows.length; n++) {
    const i = rows[n]!;
    const [lo, hi] = visibleRange(i, lq, lk, r.left, r.causal ? 0 : r.right);
    let want: Float64Array;
    if (hi < lo) {
      want = new Float64Array(row);
    } else {
      const keys = hi - lo + 1;
      const slice = (x: Float32Array) => tensor(x.subarray(lo * row, (hi + 1) * row), [keys, heads, dim]);
      want = referenceAttentionVarlen(
        tensor(r.q.subarray(i * row, (i + 1) * row), [1, heads, dim]),
        slice(r.k),
        slice(r.v),
        { cuSeqlensQ: Int32Array.of(0, 1), cuSeqlensK: Int32Array.of(0, keys) },
      ).out64;
    }
    const e = maxError(r.out, want, i * row, row);
    if (e > worst || worstRow < 0) {
      worst = e;
      worstRow = i;
    }
    if (performance.now() - last > 100) {
      scope.postMessage({ type: 'progress', done: n + 1, total: rows.length });
      last = performance.now();
    }
  }
  return { type: 'done', maxError: worst, rows: rows.length, worstRow };
}

scope.onmessage = (ev) => {
  try {
    scope.postMessage(ev.data.rows ? checkRows(ev.data, ev.data.rows) : checkAll(ev.data));
  } catch (e) {
    scope.postMessage({ type: 'error', message: (e as Error).message });
  }
};
