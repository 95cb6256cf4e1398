#!/usr/bin/env node
// The repository's CUDA build (npm ci runs it best effort, after the TypeScript build; the logic is
// the library's `flashattn build-cuda`, src/cli/build-cuda.ts):
//   node scripts/build-cuda.mjs                  best effort: no nvcc or a failed build -> one line, exit 0
//   node scripts/build-cuda.mjs --force          clean rebuild; any failure exits non-zero
//   node scripts/build-cuda.mjs --ptxas-verbose  also print ptxas register/spill reports
import { buildCuda } from '../dist/cli/build-cuda.js';

const args = new Set(process.argv.slice(2));
const force = args.has('--force');
try {
  buildCuda({ bestEffort: !force, clean: force, ptxasVerbose: args.has('--ptxas-verbose') });
} catch (e) {
  console.error(`flashattn: ${e.message}`);
  process.exitCode = 1;
}
