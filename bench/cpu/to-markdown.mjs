#!/usr/bin/env node
/**
 * Prints the BENCHMARKS.md "CPU (WebAssembly engine)" section from a results file written by
 * `node bench/cpu/run.mjs --json FILE`, so the published numbers are exactly the measured ones:
 *
 *   node bench/cpu/to-markdown.mjs bench/cpu/results.json
 */
import { readFileSync } from 'node:fs';
import { execSync } from 'node:child_process';
import { table } from '../../dist/cli/bench.js';

const file = process.argv[2] ?? 'bench/cpu/results.json';
const r = JSON.parse(readFileSync(file, 'utf8'));
const threads = [...new Set(r.results.filter((x) => x.impl !== 'naive JS').map((x) => x.threads))].sort((a, b) => a - b);
let lscpu = '';
try {
  const out = execSync('lscpu', { encoding: 'utf8' });
  const get = (k) => out.match(new RegExp(`^${k}:\\s*(.+)$`, 'm'))?.[1]?.trim();
  lscpu = `${get('Model name')} (family ${get('CPU family')}, model ${get('Model')}), ${get('CPU\\(s\\)')} CPUs, ${get('Thread\\(s\\) per core')} thread per core`;
} catch { lscpu = `${r.cpu}, ${r.cores} cores`; }
const lines = [
  `Command: \`node bench/cpu/run.mjs ${r.args.join(' ')}\` (same as \`npx flashattn bench ${r.args.join(' ')}\`), after \`npm run build\`.`,
  '',
  `- date: ${r.date}`,
  `- machine: ${lscpu}`,
  `- Node ${r.node}; ${Object.entries(r.versions).map(([k, v]) => `${k} ${v}`).join('; ')}`,
  `- load average (1, 5, 15 min): ${r.loadavgStart.join(", ")} at the start, ${r.loadavgEnd.join(", ")} at the end (the run itself included); other processes used ${r.othersCores.toFixed(2)} cores on average during the run (machine busy time minus this process's CPU time)`,
  `- float32, seeded unit-normal inputs (seed ${r.seed}); every output (each implementation, each thread count, each onnxruntime candidate) checked against the float64 reference: max |err| / max(1, |ref|) <= 1e-4${r.failures.length ? ` — FAILURES: ${r.failures.join('; ')}` : ''}`,
  `- ${r.quick ? 'quick timing (few iterations)' : 'median of timed runs after warm-up (at least 5 runs and 1.5 s per measurement; naive JS at least 3 runs)'}; GFLOP/s counts FlashAttention's FLOPs, 4 x kept (query, key) pairs x heads x d (attentionFlops), the same numerator for every implementation`,
  ...table(r, threads).slice(1),
];
console.log(lines.join('\n'));
