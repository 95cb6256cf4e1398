#!/usr/bin/env node
// Builds the WebAssembly kernel (assembly/) twice from the same source into build/wasm/:
//   flashattn.wasm          baseline SIMD (runs on every engine with wasm SIMD)
//   flashattn-relaxed.wasm  relaxed SIMD (f32x4.relaxed_madd; ASC_FEATURE_RELAXED_SIMD is true)
// The host picks one at load time with WebAssembly.validate. Pass --wat to also write .wat text,
// --out DIR to write somewhere else (e.g. a private copy for measurements).
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import asc from 'assemblyscript/asc';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outArg = process.argv.indexOf('--out');
const out = outArg > 0 ? process.argv[outArg + 1] : join(root, 'build', 'wasm');
const wat = process.argv.includes('--wat');

const common = [
  join(root, 'assembly', 'index.ts'),
  '--runtime',
  'stub', // the kernel allocates nothing: all memory is laid out by the host
  '--importMemory',
  '--sharedMemory',
  '--maximumMemory',
  '65536', // one shared 4 GiB-max memory
  '--enable',
  'simd,threads',
  '-O3',
  '--noAssert',
];

const variants = [
  { name: 'flashattn', flags: [] },
  { name: 'flashattn-relaxed', flags: ['--enable', 'relaxed-simd'] },
];

await mkdir(out, { recursive: true });
for (const v of variants) {
  const args = [...common, ...v.flags, '-o', join(out, `${v.name}.wasm`)];
  if (wat) args.push('-t', join(out, `${v.name}.wat`));
  const { error, stderr } = await asc.main(args);
  const diagnostics = stderr.toString().trim();
  if (diagnostics && !error) console.warn(diagnostics);
  if (error) {
    console.error(stderr.toString());
    console.error(`build-wasm: ${v.name} failed: ${error.message}`);
    process.exit(1);
  }
  console.log(`build-wasm: ${join(out, `${v.name}.wasm`)}`);
}
