#!/usr/bin/env node
/**
 * Prints the BENCHMARKS.md "CPU (WebAssembly engine)" section from a results file written by
 * `node bench/cpu/run.mjs --json FILE`, so the published numbers are exactly the measured ones
 * (needs `npm run bench:setup`, which compiles the table code to bench/dist/):
 *
 *   node bench/cpu/to-markdown.mjs bench/cpu/results.json
 */
import { readFileSync } from 'node:fs';
import { execSync } from 'node:child_process';
import { table } from '../dist/peer-bench.js'; // compiled by npm run bench:setup

const file = process.argv[2] ?? 'bench/cpu/results.json';
// the command as run, with the results file named as published
const args = (r0) => r0.args.map((a, i) => (r0.args[i - 1] === '--json' ? file : a)).join(' ');
const r = JSON.parse(readFileSync(file, 'utf8'));
const threads = [...new Set(r.results.filter((x) => x.impl !== 'naive JS').map((x) => x.threads))].sort(
  (a, b) => a - b,
);
let lscpu = '';
try {
  const out = execSync('lscpu', { encoding: 'utf8' });
  const get = (k) => out.match(new RegExp(`^${k}:\\s*(.+)$`, 'm'))?.[1]?.trim();
  lscpu = `${get('Model name')} (family ${get('CPU family')}, model ${get('Model')}), ${get('CPU\\(s\\)')} CPUs, ${get('Thread\\(s\\) per core')} thread per core`;
} catch {
  lscpu = `${r.cpu}, ${r.cores} cores`;
}
const lines = [
  `Command: \`npm run build && npm run bench:setup && node bench/cpu/run.mjs ${args(r)}\` (\`npx flashattn bench ${args(r)}\` times the same engine rows without the peers).`,
  '',
  `- date: ${r.date}`,
  `- machine: ${lscpu}`,
  `- Node ${r.node}; ${Object.entries(r.versions)
    .map(([k, v]) => `${k} ${v}`)
    .join('; ')
    .replace(/file:\/\/\S*\/(build\/wasm\/)/g, '$1')}`,
  `- load average (1, 5, 15 min): ${r.loadavgStart.join(', ')} at the start, ${r.loadavgEnd.join(', ')} at the end (the run itself included); other processes (machine busy time minus this process's CPU time) used ${r.othersCores.toFixed(2)} cores on average over the whole run, waits for a quiet machine included; each measurement was taken again (up to 3 times, after waiting for a quiet machine) while they used more than 0.15 cores during it, and the numbers marked ⚠ stayed disturbed${r.results.some((x) => x.othersCores > 0.15) ? '' : ' (none in this run)'}`,
  `- float32, seeded unit-normal inputs (seed ${r.seed}); every output (each implementation, each thread count, each onnxruntime candidate) checked against the float64 reference: max |err| / max(1, |ref|) <= 1e-4${r.failures.length ? ` — FAILURES: ${r.failures.join('; ')}` : ''}`,
  `- ${r.quick ? 'quick timing (few iterations)' : 'median of timed runs after warm-up (at least 5 runs and 1.5 s per measurement; naive JS at least 3 runs)'}; GFLOP/s counts FlashAttention's FLOPs, 4 x kept (query, key) pairs x heads x d (attentionFlops), the same numerator for every implementation`,
  ...table(r, threads).filter((l) => !l.startsWith('versions:')),
];
console.log(lines.join('\n'));
