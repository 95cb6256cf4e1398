/** The naive JavaScript yardstick: plain loops over float32 arrays, one query row at a time, one thread. */
import { visibleRange } from '../../dist/problem.js';
import type { WorkloadData } from '../../dist/cli/bench/workloads.js';

/** Packed `[totalQ, H, Dv]` attention with the workload's mask (bottom-right), written the obvious way. */
export function naiveAttention(d: WorkloadData): Float32Array {
  const { numHeads: H, numKvHeads: Hk, headDim: D, headDimV: Dv } = d.w;
  const { q, k, v } = d;
  const out = new Float32Array(d.totalQ * H * Dv);
  const scale = 1 / Math.sqrt(D);
  const group = H / Hk;
  const right = d.w.causal ? 0 : -1;
  const s = new Float32Array(Math.max(1, ...d.w.seqlensK));
  const acc = new Float32Array(Dv);
  for (let b = 0; b < d.w.seqlensQ.length; b++) {
    const q0 = d.cuSeqlensQ[b]!,
      k0 = d.cuSeqlensK[b]!;
    const lq = d.cuSeqlensQ[b + 1]! - q0,
      lk = d.cuSeqlensK[b + 1]! - k0;
    for (let i = 0; i < lq; i++) {
      const [lo, hi] = visibleRange(i, lq, lk, -1, right);
      for (let h = 0; h < H; h++) {
        const hk = (h / group) | 0;
        const qo = ((q0 + i) * H + h) * D;
        let m = -Infinity;
        for (let j = lo; j <= hi; j++) {
          const ko = ((k0 + j) * Hk + hk) * D;
          let dot = 0;
          for (let x = 0; x < D; x++) dot += q[qo + x]! * k[ko + x]!;
          const sc = dot * scale;
          s[j] = sc;
          if (sc > m) m = sc;
        }
        acc.fill(0);
        let sum = 0;
        for (let j = lo; j <= hi; j++) {
          const p = Math.exp(s[j]! - m);
          sum += p;
          const vo = ((k0 + j) * Hk + hk) * Dv;
          for (let x = 0; x < Dv; x++) acc[x] += p * v[vo + x]!;
        }
        const oo = ((q0 + i) * H + h) * Dv;
        if (hi >= lo) for (let x = 0; x < Dv; x++) out[oo + x] = acc[x]! / sum;
      }
    }
  }
  return out;
}
