// A tiny app that imports `flashattn` the way README's "In the browser" says, bundled by esbuild with
// no configuration (platform 'browser' picks package.json's `browser` condition), then run in
// Chromium: as an ES module on a cross-origin isolated page (2 threads) and as a classic script
// (iife, where import.meta is empty) on a plain page (one worker).
import { mkdtempSync, rmSync, symlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { packageRoot } from '../src/cli/serve.js';
import { type Browser, describeBrowser, openBrowser, openPage, startServer } from './browser-harness.js';

const APP = `
import { createEngine, referenceAttention, tensor } from 'flashattn';
import { wasmInline } from 'flashattn/wasm-inline';

async function main() {
  const engine = await createEngine({ wasm: wasmInline, threads: 2 });
  const [L, H, D] = [100, 4, 64];
  const data = (seed) => Float32Array.from({ length: L * H * D }, (_, i) => Math.sin(i * 0.37 + seed));
  const q = tensor(data(1), [1, L, H, D]), k = tensor(data(2), [1, L, H, D]), v = tensor(data(3), [1, L, H, D]);
  const got = await engine.attention(q, k, v, { causal: true });
  const ref = referenceAttention(q, k, v, { causal: true });
  let err = 0;
  for (let i = 0; i < ref.out64.length; i++) err = Math.max(err, Math.abs(got.out.data[i] - ref.out64[i]));
  const result = { threads: engine.threads, runsOn: engine.info.runsOn, wasm: engine.info.wasm, err, pass: err < 1e-4 };
  await engine.dispose();
  return result;
}
globalThis.appResult = main().catch((e) => ({ error: String(e && e.stack || e) }));
`;

describeBrowser('a bundled app (esbuild, no configuration) in Chromium', () => {
  let browser: Browser;
  let server: Awaited<ReturnType<typeof startServer>>;
  let dir: string;
  const bundles: Record<'esm' | 'iife', string> = { esm: '', iife: '' };

  beforeAll(async () => {
    browser = await openBrowser();
    server = await startServer(0, true);
    dir = mkdtempSync(join(tmpdir(), 'flashattn-bundle-'));
    mkdirSync(join(dir, 'node_modules'));
    symlinkSync(packageRoot, join(dir, 'node_modules', 'flashattn'), 'dir');
    writeFileSync(join(dir, 'app.js'), APP);
    for (const format of ['esm', 'iife'] as const) {
      const r = await build({ entryPoints: [join(dir, 'app.js')], bundle: true, format, platform: 'browser', write: false, logLevel: 'silent' });
      bundles[format] = r.outputFiles[0]!.text;
    }
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the bundle holds the browser entry only: no Node module, no cuda engine', () => {
    for (const text of Object.values(bundles)) {
      expect(text).toContain('createBrowserWasmBackend');
      expect(text).not.toMatch(/["']node:|worker_threads|loadCudaBackend|createRequire/);
    }
  });

  for (const [format, isolated, threads] of [['esm', true, 2], ['iife', false, 1]] as const) {
    it(`${format} bundle on a ${isolated ? 'cross-origin isolated' : 'plain'} page: ${threads} thread(s), matches the reference`, async () => {
      const { page, errors } = await openPage(browser, `${server.url}web/blank.html`);
      // The bundle is served from memory at /app/, next to nothing of the package.
      const headers: Record<string, string> = isolated
        ? { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' } : {};
      await page.route('**/app/**', (route) => {
        const html = route.request().url().endsWith('.html');
        void route.fulfill({
          status: 200, headers: { ...headers, 'content-type': html ? 'text/html' : 'text/javascript' },
          body: html ? `<!doctype html><script${format === 'esm' ? ' type="module"' : ''} src="app.js"></script>` : bundles[format],
        });
      });
      await page.goto(`${server.url}app/index.html`);
      const r = await page.evaluate(() => (globalThis as any).appResult);
      expect(r.error, r.error).toBeUndefined();
      expect(r).toMatchObject({ threads, runsOn: threads > 1 ? 'workers' : 'one worker', pass: true });
      expect(r.wasm).toMatch(/bytes/);
      expect(errors).toEqual([]);
      await page.close();
    });
  }
});
