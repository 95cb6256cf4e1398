// Helpers of the wasm engine's test files: child-process scripts bundled with esbuild, and a fast
// byte comparison of results (test/conformance/kvcache.ts's).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildSync } from 'esbuild';
import { afterAll, beforeAll } from 'vitest';

/**
 * A script for a child process: `body(src)` is its TypeScript, where src(path) is an import
 * specifier for a file of this repo; bundled with esbuild in a temporary folder before the suite,
 * removed after. Returns a getter of the bundle's path.
 */
export function bundledScript(prefix: string, body: (src: (p: string) => string) => string): () => string {
  let dir = '';
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), prefix));
    const entry = join(dir, 'entry.ts');
    writeFileSync(
      entry,
      body((p) => JSON.stringify(fileURLToPath(new URL(p, import.meta.url)))),
    );
    buildSync({
      entryPoints: [entry],
      bundle: true,
      platform: 'node',
      format: 'esm',
      outfile: join(dir, 'entry.mjs'),
      logLevel: 'error',
    });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  return () => join(dir, 'entry.mjs');
}

/** Index of the first differing byte, -1 if none (one definition, in the suite the browser tests run too). */
export { firstDiff } from './conformance/kvcache.js';
