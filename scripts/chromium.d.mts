import type { BrowserContext } from 'playwright-core';

export declare const chromiumPath: string;
export declare const chromiumArgs: string[];
/** Why the browser tests cannot run here, or null. */
export declare function chromiumMissing(): string | null;
/** Launches Chromium with a fresh temporary profile; `close()` also removes the profile. */
export declare function launchChromium(): Promise<{ context: BrowserContext; version: string | null; close(): Promise<void> }>;
