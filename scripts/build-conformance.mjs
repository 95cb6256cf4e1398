#!/usr/bin/env node
// dist/test/conformance.js: the conformance suite (test/conformance/) as one ES module for the places
// that run it without a TypeScript runner: the browser tests (served from dist/ into the page),
// bench/gpu/check.mjs on the GPU machine, scripts/wasm-conformance.mjs. Its imports of the library
// stay imports of dist/ (not copies), so it drives the very modules the engine runs (one knobs
// state). Not part of the package (package.json `files` leaves out dist/test).
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outdir = join(root, 'dist', 'test');
await build({
  entryPoints: [join(root, 'test/conformance/index.ts')],
  outfile: join(outdir, 'conformance.js'),
  bundle: true,
  format: 'esm',
  platform: 'neutral',
  target: 'es2022',
  logLevel: 'warning',
  plugins: [
    {
      name: 'library-from-dist',
      setup(b) {
        b.onResolve({ filter: /\/src\// }, (a) => {
          const src = join(a.resolveDir, a.path);
          const dist = join(root, 'dist', relative(join(root, 'src'), src));
          return { path: `./${relative(outdir, dist)}`.replace(/^\.\/\.\.\//, '../'), external: true };
        });
      },
    },
  ],
});
console.log('build-conformance: dist/test/conformance.js');
