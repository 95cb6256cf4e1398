// The CUDA engine's block order (cuda/work_order.h) is plain C++ run on the host, so it is
// tested here with the system C++ compiler, GPU or not: test/host/work_order_test.cc.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freshSeed } from './conformance/random.js';

const root = path.resolve(import.meta.dirname, '..');
const cxx = ['c++', 'g++', 'clang++'].find((c) => spawnSync(c, ['--version'], { stdio: 'ignore' }).status === 0);
if (!cxx) console.log('[flashattn] work-order test skipped: no C++ compiler (c++, g++ or clang++) on PATH');
const dir = mkdtempSync(path.join(os.tmpdir(), 'flashattn-order-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.skipIf(!cxx)('block order of the CUDA engine (host C++)', () => {
  it('every order is a permutation of the units and keeps its promise', () => {
    const exe = path.join(dir, 'work_order_test');
    execFileSync(
      cxx!,
      ['-std=c++17', '-O1', '-I', path.join(root, 'cuda'), path.join(root, 'test/host/work_order_test.cc'), '-o', exe],
      { stdio: 'pipe' },
    );
    const seed = freshSeed();
    const r = spawnSync(exe, [String(seed)], { encoding: 'utf8' });
    expect(r.stdout, `seed ${seed}`).toMatch(/^ok \d+/);
    expect(r.status, `seed ${seed}: ${r.stdout}`).toBe(0);
  }, 60_000);
});
