#!/usr/bin/env node
// A/B table: TFLOP/s of every flashattn build or knob setting (bench.mjs --impl LABEL rows, one
// or more passes each; the median time over passes is used) next to FlashAttention-2 (the faster
// of sdpa FLASH and varlen_attn), with each variant's time ratio to FA2 (> 1: faster than FA2).
//   node bench/gpu/abtable.mjs ab.jsonl torch.jsonl
import { readFileSync } from 'node:fs';

const rows = process.argv.slice(2).flatMap((f) => {
  try {
    return readFileSync(f, 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l));
  } catch {
    return [];
  }
});
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const impls = [
  ...new Set(
    rows.filter((r) => r.impl?.startsWith('flashattn') && !r.impl.includes('e2e') && !r.forced).map((r) => r.impl),
  ),
];
const shapes = [
  ...new Set(rows.filter((r) => r.ms != null && r.impl !== 'device').map((r) => `${r.dtype}|${r.shape}`)),
];
const flopsOf = new Map(rows.filter((r) => r.tflops).map((r) => [`${r.dtype}|${r.shape}`, r.tflops * r.ms * 1e9]));
const msOf = (k, impl) => {
  const t = rows.filter((r) => `${r.dtype}|${r.shape}` === k && r.impl === impl && r.ms != null).map((r) => r.ms);
  return t.length ? median(t) : null;
};
const lines = [
  `| shape | FA2 | ${impls.map((i) => `${i} | vs FA2`).join(' | ')} |`,
  `| --- | ---: | ${impls.map(() => '---: | ---:').join(' | ')} |`,
];
for (const k of shapes) {
  const fa2 = [msOf(k, 'FA2 sdpa'), msOf(k, 'FA2 varlen_attn')].filter((x) => x != null);
  const best = fa2.length ? Math.min(...fa2) : null;
  const tf = (ms) => (ms == null ? '' : (flopsOf.get(k) / (ms * 1e9)).toFixed(0));
  const cells = impls.map((i) => {
    const ms = msOf(k, i);
    return `${tf(ms)} | ${ms && best ? (best / ms).toFixed(3) : ''}`;
  });
  lines.push(`| ${k.replace('bfloat16|', 'bf16 ').replace('float16|', 'f16 ')} | ${tf(best)} | ${cells.join(' | ')} |`);
}
console.log(lines.join('\n'));
