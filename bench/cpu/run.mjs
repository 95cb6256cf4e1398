#!/usr/bin/env node
/**
 * The CPU benchmark with its peers (the WebAssembly engine vs onnxruntime-node, onnxruntime-web and
 * a naive JS loop), run against the built package. The peers live in this folder's own package
 * (bench/package.json), outside the published library; set them up once in a clone:
 *
 *   npm run bench:setup        # npm ci in bench/ (no install scripts) + tsc -p bench/tsconfig.json
 *
 * Exact command used for BENCHMARKS.md:
 *
 *   npm run build && npm run bench:setup && node bench/cpu/run.mjs --threads 1,2 --json bench/cpu/results.json
 *
 * Options (as `flashattn bench`): --threads 1,2  --only A,C  --quick  --json FILE  --seed N  --retries N
 */
import { existsSync } from 'node:fs';

const at = (p) => new URL(p, import.meta.url);
const missing = [
  ['../../dist/cli/bench.js', 'the library is not built (npm run build)'],
  ['../node_modules/onnxruntime-node/package.json', 'bench:setup was not run'],
  ['../node_modules/onnxruntime-web/package.json', 'bench:setup was not run'],
  ['../dist/peer-bench.js', 'bench:setup was not run (bench/cpu/*.ts are not compiled)'],
].find(([p]) => !existsSync(at(p)));
if (missing) {
  console.error(
    `bench: ${missing[1]}: run \`npm run bench:setup\` first (installs onnxruntime-node and onnxruntime-web into bench/node_modules, compiles bench/cpu/*.ts to bench/dist/)`,
  );
  process.exit(1);
}

const { UsageError, commandUsage, parseCommand } = await import('../../dist/cli/args.js');
const { benchCommand, benchOptions } = await import('../../dist/cli/bench.js');
const { peerBench } = await import('../dist/peer-bench.js');

const spec = {
  ...benchCommand,
  prog: 'node bench/cpu/run.mjs',
  summary:
    'the wasm engine against onnxruntime-node, onnxruntime-web and a naive JS loop on the CPU workloads A–F, every output verified',
  details: benchCommand.details
    .split('\n')
    .filter((l) => !l.startsWith('against peers'))
    .join('\n'),
};
const args = process.argv.slice(2);
try {
  const values = parseCommand(spec, args);
  if (values === null) console.log(commandUsage(spec));
  else await peerBench(benchOptions(values), args, (line) => console.log(line));
} catch (e) {
  console.error(e instanceof UsageError ? e.message : `bench: ${e instanceof Error ? e.message : e}`);
  process.exitCode = e instanceof UsageError ? 2 : 1;
}
