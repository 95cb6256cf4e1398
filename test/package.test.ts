// What users install: the tarballs `npm run pack` writes (scripts/pack.mjs), installed into an empty
// project with no devDependency around, then used the way the README says: its JavaScript example
// pasted into a .mjs, its TypeScript example type-checked under nodenext and bundler resolution,
// require() from CommonJS, the CLI through npx, and publint / arethetypeswrong on the tarball.
// With the platform package (where this machine built the addon) the cuda engine's addon must
// load from it and report the GPU or its absence.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findNvcc } from '../src/cli/build-cuda.js';

const root = new URL('..', import.meta.url).pathname;
const bin = (name: string) => join(root, 'node_modules', '.bin', name);
const readme = readFileSync(join(root, 'README.md'), 'utf8');
/** The first fenced block of a language after a heading of the README. */
function readmeBlock(heading: string, lang: string): string {
  const after = readme.slice(readme.indexOf(`\n## ${heading}\n`));
  const m = after.match(new RegExp('```' + lang + '\\n([\\s\\S]*?)```'));
  if (!m) throw new Error(`README: no ${lang} block under "## ${heading}"`);
  return m[1]!;
}

/** Which engine 'auto' picks in a consumer project, and the addon it loaded or why not. */
const WHICH = `import { createEngine } from 'flashattn';
const e = await createEngine({ threads: 1 });
console.log(JSON.stringify({ backend: e.backend, reason: e.fallbackReason ?? null, addon: e.info.addon ?? null }));
await e.dispose();`;
interface Which {
  backend: string;
  reason: string | null;
  addon: string | null;
}

let packed: { library: string; cuda: string | null; sizes: { library: number; cuda: number | null } };
let dir: string;
const run = (cwd: string, cmd: string, args: string[], timeout = 120_000) =>
  spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout, env: { ...process.env, FLASHATTN_BACKEND: '' } });
const project = (name: string, tarballs: string[]) => {
  const p = join(dir, name);
  mkdirSync(p);
  writeFileSync(join(p, 'package.json'), JSON.stringify({ name, version: '1.0.0', private: true }));
  const r = run(p, 'npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', ...tarballs]);
  if (r.status !== 0) throw new Error(`npm install in ${name} failed: ${r.stderr}`);
  return p;
};

beforeAll(() => {
  packed = JSON.parse(execFileSync(process.execPath, [join(root, 'scripts/pack.mjs'), '--json'], { encoding: 'utf8' }));
  dir = mkdtempSync(join(tmpdir(), 'flashattn-consumer-'));
  console.log(
    `[flashattn] packed: library ${(packed.sizes.library / 1024).toFixed(0)} KiB` +
      (packed.sizes.cuda
        ? `, @flashattn/cuda ${(packed.sizes.cuda / 2 ** 20).toFixed(1)} MiB`
        : ', no cuda package (no addon built here)'),
  );
}, 120_000);
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('the packed library', () => {
  it('holds only what users run', () => {
    const files = execFileSync('tar', ['-tzf', packed.library], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .map((f) => f.replace(/^package\//, ''));
    expect(files).toContain('dist/index.js');
    expect(files).toContain('build/wasm/flashattn.wasm');
    expect(files).toContain('LICENSE');
    expect(files).toContain('CMakeLists.txt'); // the sources `flashattn build-cuda` builds from
    const stray = files.filter((f) =>
      /^(src|test|bench|scripts|notes|assembly|packages)\/|\.node$|results|\.pyc$|^web\/blank/.test(f),
    );
    expect(stray).toEqual([]);
    // 435 KiB at 2026-12-01: two wasm builds and the inlined one for bundlers (~260 KiB), source maps with
    // their sources, the CUDA sources build-cuda compiles. The stray-file check above is the sharp one; this
    // catches a package that doubles.
    expect(packed.sizes.library).toBeLessThan(512 * 1024);
    const manifest = JSON.parse(
      execFileSync('tar', ['-xzOf', packed.library, 'package/package.json'], { encoding: 'utf8' }),
    );
    expect(manifest.scripts).toBeUndefined();
    expect(manifest.devDependencies).toBeUndefined();
    expect(manifest.private).toBeUndefined();
    expect(manifest.dependencies).toBeUndefined();
    expect(manifest.optionalDependencies).toEqual({
      [`@flashattn/cuda-${process.platform}-${process.arch}`]: manifest.version,
    });
  });

  it('passes publint and arethetypeswrong (ESM only: require() of it needs Node 20.19+, tested below)', () => {
    const lint = run(root, bin('publint'), ['--strict', packed.library]);
    expect(lint.status, lint.stdout + lint.stderr).toBe(0);
    const attw = run(root, bin('attw'), ['--profile', 'esm-only', packed.library]);
    expect(attw.status, attw.stdout + attw.stderr).toBe(0);
  }, 120_000);
});

describe('a consumer install (no devDependencies)', () => {
  let app: string;
  beforeAll(() => {
    app = project('app', [packed.library]);
  }, 120_000);

  it("the README's JavaScript example runs as pasted", () => {
    writeFileSync(join(app, 'example.mjs'), readmeBlock('Use', 'js'));
    const r = run(app, process.execPath, ['example.mjs']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^engine: (wasm|cuda)/);
    expect(r.stdout).toMatch(/out 5,4,64, lse 4,5, max error \d\.\de-\d+/);
    expect(r.stdout).toMatch(/fixed-length out 2,8,4,64/);
  });

  it("the README's KV cache example runs as pasted", () => {
    const at = readme.indexOf('**A KV cache for the decode loop**');
    const block = readme.slice(at).match(/```js\n([\s\S]*?)```/)![1]!;
    writeFileSync(join(app, 'kv.mjs'), block);
    const r = run(app, process.execPath, ['kv.mjs']);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('15 20');
  });

  for (const resolution of ['nodenext', 'bundler'] as const)
    it(`the README's TypeScript example type-checks (moduleResolution ${resolution})`, () => {
      const ts = join(app, `ts-${resolution}`);
      mkdirSync(ts);
      writeFileSync(join(ts, 'example.ts'), readmeBlock('Use', 'ts'));
      writeFileSync(join(ts, 'package.json'), JSON.stringify({ type: 'module' }));
      const module = resolution === 'nodenext' ? 'nodenext' : 'esnext';
      writeFileSync(
        join(ts, 'tsconfig.json'),
        JSON.stringify({
          compilerOptions: {
            target: 'es2022',
            module,
            moduleResolution: resolution,
            strict: true,
            noEmit: true,
            types: [],
            lib: ['es2022', 'dom'],
          },
          files: ['example.ts'],
        }),
      );
      const r = run(ts, process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', '.']);
      expect(r.status, r.stdout + r.stderr).toBe(0);
    }, 60_000);

  it('require() from CommonJS works', () => {
    writeFileSync(
      join(app, 'cjs.cjs'),
      "const fa = require('flashattn'); console.log(typeof fa.createEngine, typeof fa.tensor);",
    );
    const r = run(app, process.execPath, ['cjs.cjs']);
    expect(r.stdout.trim(), r.stderr).toBe('function function');
  });

  it('npx flashattn --version, demo, doctor and bench run', () => {
    const npx = (...args: string[]) => run(app, 'npx', ['--no-install', 'flashattn', ...args], 300_000);
    const version = npx('--version');
    expect(version.stdout.trim()).toBe(JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version);
    const demo = npx('demo', '--threads', '2');
    expect(demo.status, demo.stderr).toBe(0);
    expect(demo.stdout).toMatch(/check against the float64 reference .* OK/);
    const doctor = npx('doctor', '--backend', 'wasm', '--filter', 'Lq=10 Lk=20');
    expect(doctor.status, doctor.stdout + doctor.stderr).toBe(0);
    expect(doctor.stdout).toMatch(/doctor: [1-9]\d* passed, 0 failed/);
    const bench = npx('bench', '--quick', '--only', 'D', '--threads', '1');
    expect(bench.status, bench.stdout + bench.stderr).toBe(0);
    expect(bench.stdout).toMatch(/GFLOP\/s/);
    expect(bench.stdout).toMatch(/bench:setup/);
  }, 600_000);
});

describe('flashattn build-cuda in a consumer install', () => {
  it('says what is missing: nvcc, cmake', () => {
    const app = project('app-missing', [packed.library]);
    const cli = join(app, 'node_modules/flashattn/dist/cli.js');
    const noNvcc = spawnSync(process.execPath, [cli, 'build-cuda'], {
      cwd: app,
      encoding: 'utf8',
      env: { ...process.env, CUDACXX: '/nonexistent/nvcc' },
    });
    expect(noNvcc.status).toBe(1);
    expect(noNvcc.stderr.trim()).toBe('flashattn: CUDACXX is /nonexistent/nvcc, which does not exist');
    const nvcc = findNvcc();
    if (!nvcc) return;
    // A PATH without cmake (nvcc named by CUDACXX).
    const noCmake = spawnSync(process.execPath, [cli, 'build-cuda'], {
      cwd: app,
      encoding: 'utf8',
      env: { ...process.env, CUDACXX: nvcc, PATH: join(app, 'nothing') },
    });
    expect(noCmake.status).toBe(1);
    expect(noCmake.stderr.trim()).toBe('flashattn: cmake is not on PATH (the build needs CMake 3.18 or newer)');
  }, 120_000);

  it('builds the addon from the shipped sources where nvcc is found, and the engine loads it', (ctx) => {
    if (!findNvcc()) {
      console.log('[flashattn] no nvcc here: the consumer build-cuda is not tested');
      ctx.skip();
      return;
    }
    const app = project('app-build', [packed.library]);
    const r = run(app, 'npx', ['--no-install', 'flashattn', 'build-cuda'], 900_000);
    expect(r.status, r.stdout.slice(-2000) + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/flashattn: built .*flashattn_cuda\.node/);
    writeFileSync(join(app, 'which.mjs'), WHICH);
    const got = JSON.parse(run(app, process.execPath, ['which.mjs']).stdout) as Which;
    expect(got.backend === 'cuda' ? got.addon : got.reason).toMatch(
      /node_modules\/flashattn\/build\/Release\/flashattn_cuda\.node/,
    );
  }, 900_000);
});

describe('a consumer install with the platform package', () => {
  it('loads the prebuilt addon from @flashattn/cuda-* and reports the GPU or its absence', (ctx) => {
    if (!packed.cuda) {
      console.log('[flashattn] no addon was built here (no nvcc): the platform package is not tested');
      ctx.skip();
      return;
    }
    const app = project('app-cuda', [packed.library, packed.cuda]);
    writeFileSync(join(app, 'which.mjs'), WHICH);
    const r = run(app, process.execPath, ['which.mjs']);
    expect(r.stderr).toBe('');
    const got = JSON.parse(r.stdout) as Which;
    if (got.backend === 'cuda') expect(got.addon).toMatch(/@flashattn\/cuda-.*\(the prebuilt package/);
    else
      expect(got.reason).toMatch(
        /\(addon from the prebuilt package @flashattn\/cuda-[a-z0-9-]+: .*node_modules\/@flashattn\//,
      );
    const doctor = run(app, 'npx', ['--no-install', 'flashattn', 'doctor', '--filter', 'Lq=10 Lk=20']);
    expect(doctor.stdout).toMatch(/@flashattn\/cuda-/);
  }, 300_000);
});
