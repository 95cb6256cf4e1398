/** The demo's mask picture: one cell per (query row, key), with numbered axes; colours match the page's legend. */
import { visibleRange } from '../problem.js';

export const COLORS = { visible: '#1f4e9c', diagonal: '#f0a020', masked: '#f2f2f2', empty: '#f4c7c7' } as const;

export interface Mask {
  lq: number;
  lk: number;
  left: number;
  right: number;
}

/** Kept (query, key) pairs and rows that keep none: FlashAttention's FLOP count skips masked pairs, so GFLOP/s needs this. */
export function maskStats({ lq, lk, left, right }: Mask): { kept: number; emptyRows: number } {
  let kept = 0,
    emptyRows = 0;
  for (let i = 0; i < lq; i++) {
    const [lo, hi] = visibleRange(i, lq, lk, left, right);
    if (hi >= lo) kept += hi - lo + 1;
    else emptyRows++;
  }
  return { kept, emptyRows };
}

/** About `want` round tick values in [0, n-1], always with both ends, so the axes say where they stop. */
export function ticks(n: number, want = 5): number[] {
  if (n <= 0) return [];
  if (n === 1) return [0];
  const raw = (n - 1) / want,
    mag = 10 ** Math.floor(Math.log10(raw));
  const step = Math.max(1, [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag);
  const out = [];
  for (let t = 0; t < n - 1; t += step) out.push(t);
  // Drop a round tick that would print over the end number.
  if (out.length > 1 && n - 1 - out[out.length - 1]! < step / 2) out.pop();
  out.push(n - 1);
  return out;
}

const MARGIN = { left: 64, top: 44, right: 28, bottom: 8 };
const PLOT = { width: 800, height: 400 };

/**
 * Draws the mask. Cells are square while they are at least a pixel; past that an axis shrinks on
 * its own (a pixel then stands for several rows or keys) so the picture and its labels stay
 * readable instead of growing to thousands of pixels. The plot's origin and cell sizes go on the
 * canvas's data attributes so tests can find a cell.
 */
export function drawMask(canvas: HTMLCanvasElement, m: Mask): void {
  const { lq, lk, left, right } = m;
  const fitX = Math.min(24, PLOT.width / Math.max(lk, 1)),
    fitY = Math.min(24, PLOT.height / Math.max(lq, 1));
  const square = Math.floor(Math.min(fitX, fitY));
  const cx = square >= 1 ? square : fitX >= 1 ? Math.floor(fitX) : fitX;
  const cy = square >= 1 ? square : fitY >= 1 ? Math.floor(fitY) : fitY;
  const w = Math.ceil(lk * cx),
    h = Math.ceil(lq * cy);
  canvas.width = MARGIN.left + Math.max(w, 120) + MARGIN.right;
  // Tall enough for the turned "query rows" title even with one row.
  canvas.height = MARGIN.top + Math.max(h, 120) + MARGIN.bottom;
  Object.assign(canvas.dataset, {
    x0: String(MARGIN.left),
    y0: String(MARGIN.top),
    cellX: String(cx),
    cellY: String(cy),
  });
  const g = canvas.getContext('2d')!;
  g.clearRect(0, 0, canvas.width, canvas.height);
  const x0 = MARGIN.left,
    y0 = MARGIN.top;
  g.fillStyle = COLORS.masked;
  g.fillRect(x0, y0, w, h);
  // Below a pixel per cell everything snaps to whole pixels, each pixel row showing the query row
  // at its middle: sub-pixel fills would blend into a paler blue and the diagonal would vanish.
  const px = (j: number) => x0 + (cx >= 1 ? j * cx : Math.floor(j * cx));
  const bh = Math.max(cy, 1);
  const bands = cy >= 1 ? lq : h;
  for (let b = 0; b < bands; b++) {
    const i = cy >= 1 ? b : Math.min(lq - 1, Math.floor((b + 0.5) / cy));
    const y = y0 + (cy >= 1 ? i * cy : b);
    const [lo, hi] = visibleRange(i, lq, lk, left, right);
    if (hi < lo) {
      g.fillStyle = COLORS.empty;
      g.fillRect(x0, y, w, bh);
      continue;
    }
    g.fillStyle = COLORS.visible;
    g.fillRect(px(lo), y, Math.max(px(hi + 1) - px(lo), 1), bh);
    // A shrunk pixel row stands for several query rows: its diagonal spans all of theirs, or it breaks up.
    const iLast = cy >= 1 ? i : Math.min(lq - 1, Math.ceil((b + 1) / cy) - 1),
      iFirst = cy >= 1 ? i : Math.min(i, Math.floor(b / cy));
    const d0 = Math.max(0, iFirst + lk - lq),
      d1 = Math.min(lk - 1, iLast + lk - lq);
    if (d0 <= d1) {
      g.fillStyle = COLORS.diagonal;
      g.fillRect(px(d0), y, Math.max(px(d1 + 1) - px(d0), 1), bh);
    }
  }
  if (cx >= 6 && cy >= 6) {
    g.strokeStyle = '#fff';
    g.beginPath();
    for (let i = 0; i <= lq; i++) {
      g.moveTo(x0, y0 + i * cy);
      g.lineTo(x0 + w, y0 + i * cy);
    }
    for (let j = 0; j <= lk; j++) {
      g.moveTo(x0 + j * cx, y0);
      g.lineTo(x0 + j * cx, y0 + h);
    }
    g.stroke();
  }
  drawAxes(g, m, cx, cy);
}

const span = (n: number) => (n > 1 ? `0 … ${n - 1}` : '0');

function drawAxes(g: CanvasRenderingContext2D, { lq, lk }: Mask, cx: number, cy: number): void {
  const x0 = MARGIN.left,
    y0 = MARGIN.top;
  g.fillStyle = '#333';
  g.strokeStyle = '#333';
  g.font = '11px system-ui, sans-serif';
  g.textAlign = 'left';
  g.textBaseline = 'top';
  const scale =
    cx < 1 || cy < 1
      ? `   (shrunk: a pixel ≈ ${Math.max(1, 1 / cy).toFixed(1)} rows x ${Math.max(1, 1 / cx).toFixed(1)} keys)`
      : '';
  g.fillText(lk > 0 ? `keys ${span(lk)} →${scale}` : 'keys: none (Lk = 0)', x0, 2);
  g.textAlign = 'center';
  g.textBaseline = 'bottom';
  const tx = ticks(lk, Math.max(1, Math.min(6, Math.floor((lk * cx) / 40)))),
    ty = ticks(lq, Math.max(1, Math.min(6, Math.floor((lq * cy) / 30))));
  // The canvas's text is pixels: say it in words too, for screen readers (and tests).
  g.canvas.setAttribute(
    'aria-label',
    `visibility mask: query rows ${lq ? `0 to ${lq - 1}` : 'none'} down, keys ${lk ? `0 to ${lk - 1}` : 'none'} across`,
  );
  Object.assign(g.canvas.dataset, { ticksX: tx.join(','), ticksY: ty.join(',') });
  g.beginPath();
  for (const j of tx) {
    const x = x0 + (j + 0.5) * cx;
    g.moveTo(x, y0 - 4);
    g.lineTo(x, y0);
    g.fillText(String(j), x, y0 - 5);
  }
  g.textAlign = 'right';
  g.textBaseline = 'middle';
  for (const i of ty) {
    const y = y0 + (i + 0.5) * cy;
    g.moveTo(x0 - 4, y);
    g.lineTo(x0, y);
    g.fillText(String(i), x0 - 6, y);
  }
  g.stroke();
  g.save();
  // Turned a quarter clockwise so it reads downwards, the way row numbers grow.
  g.translate(18, y0);
  g.rotate(Math.PI / 2);
  g.textAlign = 'left';
  g.textBaseline = 'top';
  g.fillText(lq > 0 ? `query rows ${span(lq)} →` : 'query rows: none (Lq = 0)', 0, 0);
  g.restore();
}
