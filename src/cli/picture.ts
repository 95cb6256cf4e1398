import { visibleRange } from '../problem.js';

/** Draws which keys each query row sees: '█' visible, '·' hidden, the diagonal d(i) marked by the row's last key. */
export function maskPicture(lq: number, lk: number, left: number, right: number): string[] {
  const lines: string[] = [];
  const pad = String(lq - 1).length;
  lines.push(`${' '.repeat(pad + 7)}keys 0..${lk - 1}`);
  for (let i = 0; i < lq; i++) {
    const [lo, hi] = visibleRange(i, lq, lk, left, right);
    let row = '';
    for (let j = 0; j < lk; j++) row += j >= lo && j <= hi ? '█' : '·';
    const seen = hi >= lo ? `keys ${lo}..${hi}` : 'no key';
    lines.push(`  row ${String(i).padStart(pad)} ${row}  ${seen}`);
  }
  return lines;
}
