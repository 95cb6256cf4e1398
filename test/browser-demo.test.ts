// The demo page of `flashattn serve-demo` in Chromium: loads the engine on 2 threads (the server sends
// COOP/COEP), draws the visibility mask with numbered axes and a legend, locks the right window at 0
// under causal, shows GFLOP/s, and checks against the float64 reference in a Web Worker; at
// 4096 x 4096 the check samples rows while the page's own thread keeps running.
// The screenshots are written to build/browser-test/demo*.png.
import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { packageRoot } from '../src/cli/serve.js';
import { visibleRange } from '../src/problem.js';
import { type Browser, describeBrowser, openBrowser, openPage, startServer } from './browser-harness.js';

const SHOTS = join(packageRoot, 'build', 'browser-test');
const DONE = /^(PASS|FAIL|error)/;

async function shot(page: Page, name: string): Promise<void> {
  mkdirSync(SHOTS, { recursive: true });
  const path = join(SHOTS, name);
  await page.screenshot({ path, fullPage: true });
  expect(statSync(path).size).toBeGreaterThan(10_000);
  console.log(`[flashattn] demo screenshot: ${path}`);
}

/** Sets an input the way typing does (the page redraws on 'input'). */
async function set(page: Page, id: string, value: string | boolean): Promise<void> {
  if (typeof value === 'boolean') await page.setChecked(`#${id}`, value);
  else await page.fill(`#${id}`, value);
}

async function run(page: Page, timeout = 20_000): Promise<string> {
  await page.click('#run');
  await page.waitForFunction(
    (re) => new RegExp(re).test(document.getElementById('status')?.textContent ?? ''),
    DONE.source,
    { timeout },
  );
  return (await page.textContent('#status'))!;
}

type Cell = 'visible' | 'diagonal' | 'masked' | 'empty';

/** Every cell's colour as the legend names it, read from the canvas at the cell's centre. */
async function maskCells(page: Page, lq: number, lk: number): Promise<Cell[][]> {
  // The page reads the centre pixels: shipping the whole canvas to the test costs seconds.
  const c = await page.evaluate(
    ([lq, lk]) => {
      const el = document.getElementById('mask') as HTMLCanvasElement,
        g = el.getContext('2d')!;
      const [x0, y0, cx, cy] = [el.dataset['x0'], el.dataset['y0'], el.dataset['cellX'], el.dataset['cellY']].map(
        Number,
      ) as [number, number, number, number];
      const rgb = Array.from({ length: lq! }, (_, i) =>
        Array.from({ length: lk! }, (_, j) =>
          Array.from(
            g.getImageData(Math.floor(x0 + (j + 0.5) * cx), Math.floor(y0 + (i + 0.5) * cy), 1, 1).data.slice(0, 3),
          ),
        ),
      );
      return { cell: Math.min(cx, cy), rgb };
    },
    [lq, lk],
  );
  expect(c.cell).toBeGreaterThanOrEqual(6);
  return c.rgb.map((row, i) =>
    row.map(([r, g, b], j): Cell => {
      if (b! > 120 && r! < 80) return 'visible';
      if (r! > 200 && g! < 200 && b! < 80) return 'diagonal';
      if (r! > 220 && g! > 220 && b! > 220) return 'masked';
      if (r! > 220 && g! < 215 && b! < 215) return 'empty';
      throw new Error(`cell (query ${i}, key ${j}) has no legend colour: rgb(${r},${g},${b})`);
    }),
  );
}

function expectedCells(lq: number, lk: number, left: number, right: number): Cell[][] {
  return Array.from({ length: lq }, (_, i) => {
    const [lo, hi] = visibleRange(i, lq, lk, left, right);
    return Array.from(
      { length: lk },
      (_, j): Cell => (hi < lo ? 'empty' : j === i + lk - lq ? 'diagonal' : j >= lo && j <= hi ? 'visible' : 'masked'),
    );
  });
}

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

  it('draws the mask with axes and a legend, runs, and shows GFLOP/s and PASS from the worker', async () => {
    const { page, errors } = await openPage(browser, server.url);
    const workers: string[] = [];
    page.on('worker', (w) => workers.push(w.url()));
    await page.waitForSelector('#run:not([disabled])', { timeout: 20_000 });
    expect(await page.textContent('#engine')).toMatch(/engine: wasm, 2 thread\(s\).*crossOriginIsolated=true/);

    // Axes: titles and numbered ends; ticks include both ends plus a few between.
    expect(await page.getAttribute('#mask', 'aria-label')).toBe(
      'visibility mask: query rows 0 to 9 down, keys 0 to 19 across',
    );
    expect(await page.getAttribute('#mask', 'data-ticks-x')).toBe('0,5,10,15,19');
    expect(await page.getAttribute('#mask', 'data-ticks-y')).toMatch(/^0,(\d+,)+9$/);
    // The canvas's left and top margins carry ink (tick numbers, titles), not just background.
    const ink = await page.evaluate(() => {
      const el = document.getElementById('mask') as HTMLCanvasElement,
        g = el.getContext('2d')!;
      const x0 = Number(el.dataset['x0']),
        y0 = Number(el.dataset['y0']);
      const dark = (d: ImageData) => {
        let n = 0;
        for (let i = 0; i < d.data.length; i += 4) if (d.data[i + 3]! > 100 && d.data[i]! < 120) n++;
        return n;
      };
      return {
        left: dark(g.getImageData(0, y0, x0, el.height - y0)),
        top: dark(g.getImageData(x0, 0, el.width - x0, y0)),
      };
    });
    expect(ink.left).toBeGreaterThan(50);
    expect(ink.top).toBeGreaterThan(50);
    // The legend names every colour the canvas uses.
    const legend = await page.$$eval('#legend li', (lis) =>
      lis.map((li) => ({ color: (li as HTMLElement).dataset['color'], text: li.textContent })),
    );
    expect(legend.map((l) => l.color)).toEqual(['visible', 'diagonal', 'masked', 'empty']);
    expect(legend[1]!.text).toMatch(/diagonal: key i \+ Lk − Lq/);
    expect(legend[3]!.text).toMatch(/sees no key/);

    // Causal: the right window shows the 0 it forces, locked.
    expect(await page.isDisabled('#right')).toBe(true);
    expect(await page.inputValue('#right')).toBe('0');
    expect(await page.textContent('#mask-info')).toMatch(
      /window left none, right 0 \(causal\); keeps 155 of 200 .*0 row\(s\) see no key/,
    );
    expect(await maskCells(page, 10, 20)).toEqual(expectedCells(10, 20, -1, 0));

    const status = await run(page);
    const m =
      /^PASS: 10 x 20, 4 heads, head dim 64: ([\d.]+) ms, ([\d.]+) GFLOP\/s on 2 thread\(s\); checked all 10 rows in a Web Worker/.exec(
        status,
      );
    expect(m, status).not.toBeNull();
    const [ms, gflops] = [Number(m![1]), Number(m![2])];
    expect(gflops).toBeCloseTo((4 * 155 * 4 * 64) / (Number(ms) * 1e6), 2);
    expect(await page.textContent('#flops')).toMatch(/4 x 155 kept \(query, key\) pairs x 4 heads x 64 head dim/);
    expect(await page.getAttribute('#status', 'class')).toBe('ok');
    expect(workers.some((u) => u.endsWith('/dist/web/check-worker.js'))).toBe(true);
    await shot(page, 'demo.png');

    // Off causal, the box comes back with the user's value and the mask follows it.
    await set(page, 'causal', false);
    expect(await page.isDisabled('#right')).toBe(false);
    expect(await page.inputValue('#right')).toBe('-1');
    await set(page, 'right', '2');
    await set(page, 'left', '3');
    expect(await page.textContent('#mask-info')).toMatch(/window left 3, right 2;/);
    expect(await maskCells(page, 10, 20)).toEqual(expectedCells(10, 20, 3, 2));
    await set(page, 'causal', true);
    expect(await page.inputValue('#right')).toBe('0');
    expect(await maskCells(page, 10, 20)).toEqual(expectedCells(10, 20, 3, 0));
    await set(page, 'causal', false);
    expect(await page.inputValue('#right')).toBe('2');

    // More queries than keys under causal: the top rows see no key, drawn and checked as such (output 0).
    await set(page, 'causal', true);
    await set(page, 'left', '-1');
    await set(page, 'lq', '20');
    await set(page, 'lk', '10');
    expect(await page.textContent('#mask-info')).toMatch(/10 row\(s\) see no key/);
    expect(await maskCells(page, 20, 10)).toEqual(expectedCells(20, 10, -1, 0));
    expect(await run(page)).toMatch(/^PASS: 20 x 10, .* checked all 20 rows in a Web Worker/);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('checks 4096 x 4096 on a labelled sample of rows in a worker while the page keeps responding', async () => {
    const { page, errors } = await openPage(browser, server.url);
    await page.waitForSelector('#run:not([disabled])', { timeout: 20_000 });
    await set(page, 'lq', '4096');
    await set(page, 'lk', '4096');
    // While the worker checks, timers on the page's thread keep firing on time and its counter moves
    // (the check on this thread froze the page for seconds). The probe starts before Run so that it
    // sees the whole check however late the test's own polling would notice it.
    type Probe = { ms: number; maxGap: number; ticks: number; counters: number };
    await page.evaluate(() => {
      const el = document.getElementById('status')!;
      (window as unknown as { probe: Promise<Probe> }).probe = (async () => {
        const t0 = performance.now(),
          seen = new Set<string>();
        let last = t0,
          was = false,
          ms = 0,
          maxGap = 0,
          ticks = 0;
        while (!/^(PASS|FAIL|error)/.test(el.textContent ?? '') && performance.now() - t0 < 60_000) {
          await new Promise((r) => setTimeout(r, 20));
          const now = performance.now(),
            checking = /checking/.test(el.textContent ?? '');
          if (checking && was) {
            maxGap = Math.max(maxGap, now - last);
            ms += now - last;
            ticks++;
          }
          if (checking) seen.add(/… ([\d.]+) s/.exec(el.textContent ?? '')?.[1] ?? '');
          last = now;
          was = checking;
        }
        return { ms, maxGap, ticks, counters: seen.size };
      })();
    });
    await page.click('#run');
    const probe = await page.evaluate(() => (window as unknown as { probe: Promise<Probe> }).probe);
    const status = (await page.textContent('#status'))!;
    console.log(`[flashattn] demo check in a worker: ${JSON.stringify(probe)}`);
    expect(probe.ms, 'the check was too quick to show anything').toBeGreaterThan(300);
    expect(probe.maxGap, JSON.stringify(probe)).toBeLessThan(250);
    expect(probe.counters).toBeGreaterThanOrEqual(3);
    const m =
      /^PASS: 4096 x 4096, 4 heads, head dim 64: [\d.]+ ms, ([\d.]+) GFLOP\/s on 2 thread\(s\); checked (\d+) of 4096 rows \(a random sample, each row exact\) in a Web Worker/.exec(
        status,
      );
    expect(m, status).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThan(0);
    expect(Number(m![2])).toBeGreaterThan(2);
    expect(Number(m![2])).toBeLessThan(4096);
    // The picture shrinks to fit and says so, rather than growing to 4096 pixels.
    expect(await page.evaluate(() => (document.getElementById('mask') as HTMLCanvasElement).width)).toBeLessThan(1000);
    expect(await page.getAttribute('#mask', 'data-ticks-x')).toMatch(/^0,.*,4095$/);
    await shot(page, 'demo-4096.png');
    expect(errors).toEqual([]);
    await page.close();
  });
});
