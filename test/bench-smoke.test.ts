/**
 * Smoke tests of the CPU benchmarks, no timing assertions:
 * - the library's `flashattn bench --quick --only D` (dist/cli.js, as a consumer install runs it:
 *   no devDependency, no onnxruntime): progress "n of N", GFLOP/s, verification, the peers line;
 * - the peer benchmark (bench/cpu, its own package) when `npm run bench:setup` was run; skipped
 *   otherwise, with the reason the benchmark prints.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = new URL('..', import.meta.url).pathname;
const node = (args: string[]) => spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8', timeout: 240_000 });
const PEERS_LINE =
  'peers: onnxruntime-node, onnxruntime-web and the naive JS loop run from a clone of the repository: npm run bench:setup && npm run bench';

function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? tsFiles(p) : p.endsWith('.ts') ? [p] : [];
  });
}

describe('flashattn bench (the library, CPU)', () => {
  it('runs workload D quickly: progress n of N, GFLOP/s, every output verified, then the peers line', () => {
    const dir = mkdtempSync(join(os.tmpdir(), 'flashattn-bench-'));
    try {
      const json = join(dir, 'report.json');
      const r = node(['dist/cli.js', 'bench', '--quick', '--only', 'D', '--threads', '1,2', '--json', json]);
      expect(r.status, r.stderr).toBe(0);
      const lines = r.stdout.trimEnd().split('\n');
      const text = r.stdout;
      expect(text).toMatch(/load average/);
      expect(lines.some((l) => /^ {2}D 1t flashattn .*GFLOP\/s .*✓.*\(1 of 2, about \d+ (s|min) left\)$/.test(l))).toBe(
        true,
      );
      expect(lines.some((l) => /^ {2}D 2t flashattn .*GFLOP\/s .*✓.*\(2 of 2, \d+ (s|min) in all\)$/.test(l))).toBe(
        true,
      );
      expect(text).toMatch(/\| D \| 1 \| [\d.]+ \| [\d.]+/);
      expect(text).toMatch(/\| D \| 2 \| [\d.]+ \| [\d.]+/);
      expect(text).toMatch(/verification: every output matched the float64 reference/);
      expect(text).not.toMatch(/MISMATCH|onnxruntime-node \(|naive JS +\d/);
      expect(lines.at(-1)).toBe(PEERS_LINE);
      expect(lines.filter((l) => l.startsWith('peers:'))).toHaveLength(1);
      const report = JSON.parse(readFileSync(json, 'utf8')) as {
        results: { impl: string; threads: number; ok: boolean }[];
      };
      expect(report.results.map((x) => `${x.impl} ${x.threads} ${x.ok}`)).toEqual([
        'flashattn 1 true',
        'flashattn 2 true',
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 240_000);

  it('needs no onnxruntime: none is imported in src/, onnxruntime-node and -web are no dependency of the package', () => {
    const imports = /(from\s+|import\s*\(\s*|require\s*\(\s*|resolve\s*\(\s*)['"`]onnxruntime/;
    const offenders = tsFiles(join(root, 'src')).filter((f) => imports.test(readFileSync(f, 'utf8')));
    expect(offenders).toEqual([]);
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as Record<
      string,
      Record<string, string> | undefined
    >;
    const deps = Object.keys({
      ...pkg.dependencies,
      ...pkg.devDependencies,
      ...pkg.optionalDependencies,
      ...pkg.peerDependencies,
    });
    // (their install scripts download from outside the npm registry; they belong to bench/package.json)
    expect(deps.filter((d) => d === 'onnxruntime-node' || d === 'onnxruntime-web')).toEqual([]);
  });
});

describe('the peer benchmark (bench/cpu, npm run bench:setup && npm run bench)', () => {
  const setUp =
    existsSync(join(root, 'bench/node_modules/onnxruntime-node/package.json')) &&
    existsSync(join(root, 'bench/node_modules/onnxruntime-web/package.json')) &&
    existsSync(join(root, 'bench/dist/peer-bench.js'));

  it('runs workload D quickly against onnxruntime-node, onnxruntime-web and the naive loop, verifying every output', (ctx) => {
    if (!setUp) {
      // the benchmark says, in one line, that bench:setup was not run
      const r = node(['bench/cpu/run.mjs', '--quick', '--only', 'D']);
      expect(r.status).toBe(1);
      const reason = r.stderr.trim();
      expect(reason.split('\n')).toHaveLength(1);
      expect(reason).toMatch(/npm run bench:setup/);
      console.log(`skipped: ${reason}`);
      ctx.skip(reason);
    }
    const r = node(['bench/cpu/run.mjs', '--quick', '--only', 'D', '--threads', '1']);
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    for (const impl of ['flashattn', 'onnxruntime-node', 'onnxruntime-web', 'naive JS'])
      expect(
        lines.some((l) => new RegExp(`^ {2}D 1t ${impl} +[\\d.]+ ms .*GFLOP/s .*✓.*\\(\\d of 4, `).test(l)),
        impl,
      ).toBe(true);
    expect(r.stdout).toMatch(/\(4 of 4, \d+ (s|min) in all\)/);
    expect(r.stdout).toMatch(
      /\| workload \| threads \| flashattn \| onnxruntime-node \| onnxruntime-web \| naive JS \(1 thread\) \|/,
    );
    expect(r.stdout).toMatch(/\| D \| 1 \| [\d.]+( ⚠)? \| [\d.]+( ⚠)? \| [\d.]+( ⚠)? \| [\d.]+( ⚠)? \| [\d.]+x \|/);
    expect(r.stdout).toMatch(/- D onnxruntime-node: 1t: /);
    expect(r.stdout).toMatch(/verification: every output matched the float64 reference/);
    expect(r.stdout).not.toMatch(/MISMATCH|not installed/);
  }, 240_000);
});
