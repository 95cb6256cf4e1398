#!/usr/bin/env node
/**
 * The CPU benchmark (WebAssembly engine vs onnxruntime-node, onnxruntime-web and a naive JS loop),
 * run against the built package. Exact command used for BENCHMARKS.md:
 *
 *   npm run build && node bench/cpu/run.mjs --threads 1,2 --json bench/cpu/results.json
 *
 * Same as `npx flashattn bench ...`. Options: --threads 1,2  --only A,C  --quick  --json FILE  --seed N  --retries N
 */
import { runBench } from '../../dist/cli/bench.js';

runBench(process.argv.slice(2), (line) => console.log(line)).catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
});
