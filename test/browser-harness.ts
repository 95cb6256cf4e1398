// Shared by test/browser-*.test.ts: Chromium (the system's, never downloaded), the demo server,
// and the rule for a machine without Chromium: skip with the reason printed, except under CI
// (process.env.CI), where the suite runs and fails loudly with that reason.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe } from 'vitest';
import { chromiumMissing, launchChromium } from '../scripts/chromium.mjs'; // shared with bench/browser/run.mjs
import { packageRoot } from '../src/cli/serve.js';

import { startServer } from '../src/cli/serve.js';

export { startServer };

const chromiumAbsent = chromiumMissing();

const BUILT = [
  'dist/browser.js',
  'dist/test/conformance.js',
  'dist/wasm/worker-source.js',
  'dist/wasm-inline.js',
  'build/wasm/flashattn.wasm',
  'build/wasm/flashattn-relaxed.wasm',
];

/** The browser tests run the built package (dist/, build/wasm/), as a page would. */
function buildMissing(): string | null {
  const absent = BUILT.filter((f) => !existsSync(join(packageRoot, f)));
  return absent.length ? `the package is not built (${absent.join(', ')} missing): run npm run build` : null;
}

/** describe(), or, without Chromium outside CI, describe.skip() with the reason printed. */
export function describeBrowser(name: string, fn: () => void): void {
  if (chromiumAbsent && !process.env.CI) {
    console.warn(`[flashattn] skipping "${name}": ${chromiumAbsent}`);
    describe.skip(name, fn);
  } else {
    describe(name, fn);
  }
}

export interface Browser {
  context: BrowserContext;
  version: string | null;
  close(): Promise<void>;
}

export async function openBrowser(): Promise<Browser> {
  const why = chromiumAbsent ?? buildMissing();
  if (why) throw new Error(`the browser tests cannot run: ${why}`);
  return launchChromium();
}

/** A page at `url`, collecting its uncaught errors; in it, `load(url)` imports a module. */
export async function openPage(browser: Browser, url: string): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`);
  });
  await page.goto(url);
  // Functions passed to page.evaluate are transformed by vitest, which rewrites import(); a string is not.
  await page.evaluate('globalThis.load = (url) => import(url)');
  return { page, errors };
}

/**
 * A suite's Chromium and its two page servers (plain, and cross-origin isolated for the worker pool),
 * opened before its tests and closed after them: `blankUrl(isolated)` is each server's blank page.
 */
export function browserWithServers(): { browser: () => Browser; blankUrl: (isolated: boolean) => string } {
  let browser: Browser | undefined;
  const servers: Partial<Record<'plain' | 'isolated', Awaited<ReturnType<typeof startServer>>>> = {};
  beforeAll(async () => {
    browser = await openBrowser();
    servers.plain = await startServer(0, false);
    servers.isolated = await startServer(0, true);
  });
  afterAll(async () => {
    await browser?.close();
    await servers.plain?.close();
    await servers.isolated?.close();
  });
  return {
    browser: () => browser!,
    blankUrl: (isolated) => `${servers[isolated ? 'isolated' : 'plain']!.url}web/blank.html`,
  };
}
