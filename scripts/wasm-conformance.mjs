#!/usr/bin/env node
// Runs every shared conformance case on the wasm engine (from dist/: `npm run build` first).
// THREADS=1,2 (default) SEED=n VERBOSE=1 SIMD=auto|baseline|relaxed
import { createEngine } from '../dist/node.js';
import { caseId, cases, runCase } from '../dist/test/conformance.js';

if (process.env.SIMD) process.env.FLASHATTN_WASM_SIMD = process.env.SIMD;
const threadsList = (process.env.THREADS ?? '1,2').split(',').map(Number);
const seed = Number(process.env.SEED ?? Math.floor(Math.random() * 2 ** 31));
let bad = 0;
for (const threads of threadsList) {
  const engine = await createEngine({ backend: 'wasm', threads });
  console.log('engine', JSON.stringify(engine.info), 'seed', seed);
  for (const [i, c] of cases.entries()) {
    const r = await runCase(engine, c, seed + i);
    if (!r.ok || process.env.VERBOSE)
      console.log(r.ok ? 'ok  ' : 'FAIL', `t=${threads}`, caseId(c), '|', r.detail, r.skipped ?? '');
    if (!r.ok) bad++;
  }
  await engine.dispose();
}
console.log(bad ? `${bad} failures` : 'all ok');
process.exitCode = bad ? 1 : 0;
