// Headless Chromium for the browser tests and bench/browser/run.mjs: the system's build (Debian's
// `chromium`; never downloaded), a fresh profile per launch, no background network traffic.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const chromiumPath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

export const chromiumArgs = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Why the browser tests cannot run here, or null. */
export function chromiumMissing() {
  return existsSync(chromiumPath)
    ? null
    : `no Chromium at ${chromiumPath} (set CHROMIUM_PATH, or apt-get install chromium; .ci/run does)`;
}

/** Launches Chromium with a fresh temporary profile; `close()` also removes the profile. */
export async function launchChromium() {
  const { chromium } = await import('playwright-core');
  const profile = mkdtempSync(join(tmpdir(), 'flashattn-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    args: chromiumArgs,
    viewport: { width: 1100, height: 900 },
  });
  return {
    context,
    version: context.browser()?.version() ?? null,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
