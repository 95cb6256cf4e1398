#!/usr/bin/env node
// The C++ and CUDA sources against .clang-format (clang-format from its npm package, so every machine
// formats alike), and the size rule for every hand-written source file: about 400 lines at most.
//   node scripts/check-format.mjs          fails, naming each file, if one is off
//   node scripts/check-format.mjs --write  formats the C++ and CUDA files in place
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const write = process.argv.includes('--write');
const tracked = (...globs) =>
  execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '--', ...globs], {
    cwd: root,
    encoding: 'utf8',
  })
    .split('\n')
    .filter(Boolean);
// Generated files are formatted by their generator and may be long.
const GENERATED = new Set(['cuda/wgmma_ops.h']);
const MAX_LINES = 420;

const clang = join(dirname(createRequire(import.meta.url).resolve('clang-format/package.json')), 'index.js');
const problems = [];
for (const f of tracked('cuda/*.cu', 'cuda/*.cuh', 'cuda/*.h', 'csrc/*.cc', 'csrc/*.h', 'test/host/*.cc')) {
  if (GENERATED.has(f)) continue;
  const path = join(root, f);
  const src = readFileSync(path, 'utf8');
  const formatted = execFileSync(process.execPath, [clang, '--style=file', `--assume-filename=${f}`], {
    cwd: root,
    input: src,
    encoding: 'utf8',
    maxBuffer: 1 << 26,
  });
  if (formatted === src) continue;
  if (write) writeFileSync(path, formatted);
  else problems.push(`${f}: not clang-formatted (npm run format)`);
}
for (const f of tracked(
  'src/*.ts',
  'src/**/*.ts',
  'assembly/*.ts',
  'test/*.ts',
  'test/**/*.ts',
  'bench/**/*.ts',
  'bench/**/*.mjs',
  'scripts/*.mjs',
  'cuda/*',
  'csrc/*',
)) {
  if (GENERATED.has(f) || f.endsWith('.d.mts')) continue;
  const lines = readFileSync(join(root, f), 'utf8').split('\n').length;
  if (lines > MAX_LINES) problems.push(`${f}: ${lines} lines (split it by concern; about 400 at most)`);
}
for (const p of problems) console.error(p);
if (problems.length) process.exit(1);
console.log(`check-format: C++/CUDA formatted, no source file over ${MAX_LINES} lines`);
