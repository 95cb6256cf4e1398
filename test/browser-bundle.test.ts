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
import { createEngine, decode, referenceAttention, tensor } from 'flashattn';
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
  // Tensors as a page holds them: no dtype for Float32Array, and the browser's own Float16Array.
  const plain = await engine.attention({ data: q.data, shape: q.shape }, { data: k.data, shape: k.shape }, v, { causal: true });
  const samePlain = plain.out.data.every((x, i) => Object.is(x, got.out.data[i]));
  let f16 = 'no Float16Array';
  if (typeof Float16Array === 'function') {
    const t = (seed) => ({ data: new Float16Array(data(seed)), shape: [1, L, H, D] });
    const [q16, k16, v16] = [t(1), t(2), t(3)];
    const r16 = await engine.attention(q16, k16, v16, { causal: true });
    const ref16 = referenceAttention(q16, k16, v16, { causal: true }).out64;
    const o = decode(r16.out.data, r16.out.dtype);
    let num = 0, den = 0;
    for (let i = 0; i < o.length; i++) { num += (o[i] - ref16[i]) ** 2; den += ref16[i] ** 2; }
    f16 = r16.out.dtype === 'float16' && Math.sqrt(num / den) < 2e-3 ? 'ok' : 'relative error ' + Math.sqrt(num / den) + ' ' + r16.out.dtype;
  }
  const result = { threads: engine.threads, runsOn: engine.info.runsOn, wasm: engine.info.wasm, err, pass: err < 1e-4, samePlain, f16 };
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
      const r = await build({
        entryPoints: [join(dir, 'app.js')],
        bundle: true,
        format,
        platform: 'browser',
        write: false,
        logLevel: 'silent',
      });
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

  for (const [format, isolated, threads] of [
    ['esm', true, 2],
    ['iife', false, 1],
  ] as const) {
    it(`${format} bundle on a ${isolated ? 'cross-origin isolated' : 'plain'} page: ${threads} thread(s), matches the reference`, async () => {
      const { page, errors } = await openPage(browser, `${server.url}web/blank.html`);
      // The bundle is served from memory at /app/, next to nothing of the package.
      const headers: Record<string, string> = isolated
        ? { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' }
        : {};
      await page.route('**/app/**', (route) => {
        const html = route.request().url().endsWith('.html');
        void route.fulfill({
          status: 200,
          headers: { ...headers, 'content-type': html ? 'text/html' : 'text/javascript' },
          body: html
            ? `<!doctype html><script${format === 'esm' ? ' type="module"' : ''} src="app.js"></script>`
            : bundles[format],
        });
      });
      await page.goto(`${server.url}app/index.html`);
      const r = await page.evaluate(() => (globalThis as any).appResult);
      expect(r.error, r.error).toBeUndefined();
      expect(r).toMatchObject({
        threads,
        runsOn: threads > 1 ? 'workers' : 'one worker',
        pass: true,
        samePlain: true,
        f16: 'ok',
      });
      expect(r.wasm).toMatch(/bytes/);
      expect(errors).toEqual([]);
      await page.close();
    });
  }
});
