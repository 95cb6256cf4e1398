// The CUDA addon's host copy threads (csrc/copy_pool.cc) are plain C++, so they are tested here with the
// system C++ compiler, GPU or not: test/host/copy_pool_test.cc.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '..');
const cxx = ['c++', 'g++', 'clang++'].find((c) => spawnSync(c, ['--version'], { stdio: 'ignore' }).status === 0);
if (!cxx) console.log('[flashattn] copy-pool test skipped: no C++ compiler (c++, g++ or clang++) on PATH');
const dir = mkdtempSync(path.join(os.tmpdir(), 'flashattn-pool-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.skipIf(!cxx)('host copy threads of the CUDA addon (host C++)', () => {
  it('run every index once and return when all ran, with several callers at once', () => {
    const exe = path.join(dir, 'copy_pool_test');
    execFileSync(
      cxx!,
      [
        '-std=c++17',
        '-O1',
        '-pthread',
        '-I',
        path.join(root, 'csrc'),
        path.join(root, 'csrc/copy_pool.cc'),
        path.join(root, 'test/host/copy_pool_test.cc'),
        '-o',
        exe,
      ],
      { stdio: 'pipe' },
    );
    const r = spawnSync(exe, [], { encoding: 'utf8', timeout: 30_000 });
    expect(r.stdout).toMatch(/^ok \d+/);
    expect(r.status, r.stdout + r.stderr).toBe(0);
  }, 60_000);
});
