/** The browser demo page (web/index.html): pick lengths and masks, see the mask, run, check against the reference. */
import { createEngine, referenceAttentionVarlen, tensor } from '../browser.js';
import { visibleRange } from '../problem.js';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const num = (id: string) => Number($<HTMLInputElement>(id).value);

function params() {
  const causal = $<HTMLInputElement>('causal').checked;
  const left = num('left'), right = causal ? 0 : num('right');
  return { lq: num('lq'), lk: num('lk'), heads: num('heads'), dim: num('dim'), causal, left, right };
}

function drawMask(): void {
  const { lq, lk, left, right } = params();
  const canvas = $<HTMLCanvasElement>('mask');
  const cell = Math.max(1, Math.min(24, Math.floor(800 / Math.max(lk, 1)), Math.floor(400 / Math.max(lq, 1))));
  canvas.width = Math.max(1, lk * cell);
  canvas.height = Math.max(1, lq * cell);
  const g = canvas.getContext('2d')!;
  g.fillStyle = '#f2f2f2';
  g.fillRect(0, 0, canvas.width, canvas.height);
  for (let i = 0; i < lq; i++) {
    const [lo, hi] = visibleRange(i, lq, lk, left, right);
    if (hi < lo) continue;
    g.fillStyle = '#1f4e9c';
    g.fillRect(lo * cell, i * cell, (hi - lo + 1) * cell, cell);
    const d = i + lk - lq;
    if (d >= 0 && d < lk) { g.fillStyle = '#f0a020'; g.fillRect(d * cell, i * cell, cell, cell); }
  }
  if (cell >= 6) {
    g.strokeStyle = '#fff';
    for (let i = 0; i <= lq; i++) { g.beginPath(); g.moveTo(0, i * cell); g.lineTo(canvas.width, i * cell); g.stroke(); }
    for (let j = 0; j <= lk; j++) { g.beginPath(); g.moveTo(j * cell, 0); g.lineTo(j * cell, canvas.height); g.stroke(); }
  }
}

function random(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1);
}

async function main(): Promise<void> {
  const engine = await createEngine();
  $('engine').textContent = `engine: ${engine.backend}, ${engine.threads} thread(s)` +
    (engine.info['threadsReason'] ? ` — ${engine.info['threadsReason']}` : '') +
    `, crossOriginIsolated=${globalThis.crossOriginIsolated === true}`;
  const button = $<HTMLButtonElement>('run');
  button.disabled = false;
  for (const el of document.querySelectorAll('input')) el.addEventListener('input', drawMask);
  drawMask();
  $('form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const { lq, lk, heads, dim, causal, left } = params();
    const status = $('status');
    status.className = '';
    status.textContent = 'running…';
    button.disabled = true;
    try {
      const q = tensor(random(lq * heads * dim, 1), [lq, heads, dim]);
      const k = tensor(random(lk * heads * dim, 2), [lk, heads, dim]);
      const v = tensor(random(lk * heads * dim, 3), [lk, heads, dim]);
      const window: [number, number] = [left, causal ? -1 : num('right')];
      const opts = { cuSeqlensQ: Int32Array.of(0, lq), cuSeqlensK: Int32Array.of(0, lk), causal, window, returnLse: true };
      const t0 = performance.now();
      const got = await engine.attentionVarlen(q, k, v, opts);
      const ms = performance.now() - t0;
      const ref = referenceAttentionVarlen(q, k, v, opts);
      const o = got.out.data as Float32Array;
      let err = 0;
      for (let i = 0; i < o.length; i++) err = Math.max(err, Math.abs(o[i]! - ref.out64[i]!) / Math.max(1, Math.abs(ref.out64[i]!)));
      const ok = err <= 1e-4;
      status.className = ok ? 'ok' : 'bad';
      status.textContent = `${ok ? 'PASS' : 'FAIL'}: ${lq} x ${lk}, ${heads} heads, head dim ${dim}: ${ms.toFixed(2)} ms on ${engine.threads} thread(s); ` +
        `max error against the float64 reference ${err.toExponential(2)}`;
    } catch (e) {
      status.className = 'bad';
      status.textContent = `error: ${(e as Error).message}`;
    } finally {
      button.disabled = false;
    }
  });
}

main().catch((e: unknown) => { $('engine').textContent = `failed to start: ${(e as Error).message}`; });
