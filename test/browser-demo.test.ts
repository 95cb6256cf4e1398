// The demo page of `flashattn serve-demo` in Chromium: loads the engine on 2 threads (the server sends
// COOP/COEP), draws the visibility mask of the default 10 x 20 causal case, and after Run shows PASS.
// The screenshot is written to build/browser-test/demo.png.
import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { packageRoot } from '../src/cli/serve.js';
import { visibleRange } from '../src/problem.js';
import { type Browser, describeBrowser, openBrowser, openPage, startServer } from './browser-harness.js';

const SHOT = join(packageRoot, 'build', 'browser-test', 'demo.png');

describeBrowser('the demo page in Chromium', () => {
  let browser: Browser;
  let server: Awaited<ReturnType<typeof startServer>>;
  beforeAll(async () => {
    browser = await openBrowser();
    server = await startServer(0, true);
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('draws the mask, runs, and shows PASS against the reference', async () => {
    const { page, errors } = await openPage(browser, server.url);
    await page.waitForSelector('#run:not([disabled])', { timeout: 20_000 });
    expect(await page.textContent('#engine')).toMatch(/engine: wasm, 2 thread\(s\).*crossOriginIsolated=true/);

    await page.click('#run');
    await page.waitForFunction(() => /PASS|FAIL|error/.test(document.getElementById('status')?.textContent ?? ''), null, { timeout: 20_000 });
    const status = await page.textContent('#status');
    expect(status).toMatch(/^PASS: 10 x 20, 4 heads, head dim 64: [\d.]+ ms on 2 thread\(s\)/);
    expect(await page.getAttribute('#status', 'class')).toBe('ok');

    // The mask: one cell per (query, key), visible keys blue, the diagonal orange, the rest grey.
    const canvas = await page.evaluate(() => {
      const c = document.getElementById('mask') as HTMLCanvasElement;
      return { width: c.width, height: c.height, rgba: Array.from(c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data) };
    });
    const [lq, lk] = [10, 20];
    const cell = canvas.width / lk;
    expect(cell).toBeGreaterThanOrEqual(6);
    expect(canvas.height).toBe(lq * cell);
    const color = (i: number, j: number) => {
      const x = Math.floor((j + 0.5) * cell), y = Math.floor((i + 0.5) * cell), at = 4 * (y * canvas.width + x);
      const [r, g, b] = canvas.rgba.slice(at, at + 3);
      return b! > 120 && r! < 80 ? 'visible' : r! > 200 && g! < 200 && b! < 80 ? 'diagonal' : r! > 220 && g! > 220 && b! > 220 ? 'hidden' : `rgb(${r},${g},${b})`;
    };
    for (let i = 0; i < lq; i++) {
      const [lo, hi] = visibleRange(i, lq, lk, -1, 0);
      for (let j = 0; j < lk; j++) {
        const want = j === i + lk - lq ? 'diagonal' : j >= lo && j <= hi ? 'visible' : 'hidden';
        expect(color(i, j), `cell (query ${i}, key ${j})`).toBe(want);
      }
    }

    mkdirSync(join(packageRoot, 'build', 'browser-test'), { recursive: true });
    await page.screenshot({ path: SHOT, fullPage: true });
    expect(statSync(SHOT).size).toBeGreaterThan(10_000);
    console.log(`[flashattn] demo screenshot: ${SHOT}`);
    expect(errors).toEqual([]);
    await page.close();
  });
});
