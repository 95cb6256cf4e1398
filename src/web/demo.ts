/** The browser demo page (web/index.html): pick lengths and masks, see the mask, run, check against the reference. */
import { createEngine, tensor } from '../browser.js';
import { checkInWorker, sampleRows } from './check.js';
import { drawMask, maskStats } from './mask.js';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const num = (id: string) => Number($<HTMLInputElement>(id).value);

/** The mask the engine is given: causal means right = 0 whatever the right-window box held. */
function params() {
  const causal = $<HTMLInputElement>('causal').checked;
  const left = num('left'),
    right = causal ? 0 : num('right');
  return { lq: num('lq'), lk: num('lk'), heads: num('heads'), dim: num('dim'), causal, left, right };
}

/**
 * Causal overrides the right window, so the box shows the 0 in force and is locked; the user's
 * own value comes back when causal is unticked.
 */
function syncCausal(): void {
  const box = $<HTMLInputElement>('right');
  const causal = $<HTMLInputElement>('causal').checked;
  if (causal && !box.disabled) {
    box.dataset['saved'] = box.value;
    box.value = '0';
  }
  if (!causal && box.disabled) box.value = box.dataset['saved'] ?? '-1';
  box.disabled = causal;
  $('right-note').textContent = causal ? '0: set by causal' : '-1 = none';
}

const windowText = (w: number) => (w < 0 ? 'none' : String(w));

function redraw(): void {
  syncCausal();
  const p = params();
  drawMask($<HTMLCanvasElement>('mask'), p);
  const { kept, emptyRows } = maskStats(p);
  const total = p.lq * p.lk;
  $('mask-info').textContent =
    `mask in use: window left ${windowText(p.left)}, right ${windowText(p.right)}` +
    `${p.causal ? ' (causal)' : ''}; keeps ${kept} of ${total} (query, key) pairs` +
    `${total ? ` (${((100 * kept) / total).toFixed(1)}%)` : ''}; ${emptyRows} row(s) see no key`;
}

function random(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1);
}

/** FlashAttention's count: QK^T and PV, 2 FLOPs per multiply-add each, over kept pairs only. */
const gflops = (kept: number, heads: number, dim: number, ms: number) =>
  ms > 0 ? ((4 * kept * heads * dim) / (ms * 1e6)).toFixed(2) : '—';

async function main(): Promise<void> {
  // The mask needs no engine: draw it (and follow the inputs) while the wasm loads.
  for (const el of document.querySelectorAll('input')) el.addEventListener('input', redraw);
  redraw();
  const engine = await createEngine();
  $('engine').textContent =
    `engine: ${engine.backend}, ${engine.threads} thread(s)` +
    (engine.info['threadsReason'] ? ` — ${engine.info['threadsReason']}` : '') +
    `, crossOriginIsolated=${globalThis.crossOriginIsolated === true}`;
  const button = $<HTMLButtonElement>('run');
  button.disabled = false;
  $('form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const p = params();
    const { lq, lk, heads, dim, causal, left, right } = p;
    const status = $('status');
    status.className = '';
    status.textContent = 'running…';
    $('flops').textContent = '';
    button.disabled = true;
    let ticker: ReturnType<typeof setInterval> | undefined;
    try {
      const qd = random(lq * heads * dim, 1),
        kd = random(lk * heads * dim, 2),
        vd = random(lk * heads * dim, 3);
      const q = tensor(qd, [lq, heads, dim]),
        k = tensor(kd, [lk, heads, dim]),
        v = tensor(vd, [lk, heads, dim]);
      const opts = {
        cuSeqlensQ: Int32Array.of(0, lq),
        cuSeqlensK: Int32Array.of(0, lk),
        causal,
        window: [left, right] as [number, number],
      };
      const t0 = performance.now();
      const got = await engine.attentionVarlen(q, k, v, opts);
      const ms = performance.now() - t0;
      const { kept } = maskStats(p);
      const timing =
        `${lq} x ${lk}, ${heads} heads, head dim ${dim}: ${ms.toFixed(2)} ms, ` +
        `${gflops(kept, heads, dim, ms)} GFLOP/s on ${engine.threads} thread(s)`;
      $('flops').textContent =
        `GFLOP/s as FlashAttention counts it: 4 x ${kept} kept (query, key) pairs x ${heads} heads x ` +
        `${dim} head dim = ${((4 * kept * heads * dim) / 1e9).toPrecision(3)} GFLOP in ${ms.toFixed(2)} ms; masked pairs are not counted`;

      const rows = sampleRows(lq, kept, heads, dim);
      const what = rows ? `${rows.length} of ${lq} rows (a random sample, each row exact)` : `all ${lq} rows`;
      // The elapsed counter ticks from this thread: if it moves, the page is not blocked by the check.
      const c0 = performance.now();
      let progress = '';
      const tick = () => {
        status.textContent = `${timing}; checking ${what} in a Web Worker… ${((performance.now() - c0) / 1000).toFixed(1)} s${progress}`;
      };
      tick();
      ticker = setInterval(tick, 100);
      const out = got.out.data as Float32Array;
      const check = await checkInWorker({ ...p, q: qd, k: kd, v: vd, out, rows }, (done, total) => {
        progress = ` (${done}/${total})`;
      });
      const ok = check.maxError <= 1e-4;
      status.className = ok ? 'ok' : 'bad';
      status.textContent =
        `${ok ? 'PASS' : 'FAIL'}: ${timing}; checked ${what} in a Web Worker ` +
        `(${(check.ms / 1000).toFixed(1)} s): max error against the float64 reference ${check.maxError.toExponential(2)}` +
        (ok || check.worstRow < 0 ? '' : ` (worst at query row ${check.worstRow})`);
    } catch (e) {
      status.className = 'bad';
      status.textContent = `error: ${(e as Error).message}`;
    } finally {
      clearInterval(ticker);
      button.disabled = false;
    }
  });
}

main().catch((e: unknown) => {
  $('engine').textContent = `failed to start: ${(e as Error).message}`;
});
