/**
 * The browser's side of the wasm engine: Web Workers started from the bundled worker script
 * (a Blob URL, so neither a page nor a bundler has to find a file next to the package), files
 * through fetch, and navigator.hardwareConcurrency. Threads share one WebAssembly.Memory, which
 * a page can only post to a worker when it is cross-origin isolated (SharedArrayBuffer).
 */
import type { Platform, WorkerHandle, WorkerInit, WorkerMessage } from './platform.js';
import type { ToWorker } from './worker-browser.js';
import { workerSource } from './worker-source.js';

let scriptUrl: string | null = null;

/** Starts a worker running worker-browser.ts; its first message picks its role. */
export function spawnWorker(name: string): Worker {
  scriptUrl ??= URL.createObjectURL(new Blob([workerSource], { type: 'text/javascript' }));
  return new Worker(scriptUrl, { name });
}

/** Why a worker is gone, from its 'error' event (a script that could not start, or an uncaught error). */
export function workerError(e: ErrorEvent | Event): Error {
  const message = (e as ErrorEvent).message;
  return new Error(
    message
      ? `wasm worker failed: ${message}`
      : 'wasm worker failed to start (a Content-Security-Policy must allow worker-src blob:)',
  );
}

class BrowserWorker implements WorkerHandle {
  private readonly w: Worker;
  private failed = false;
  constructor(init: WorkerInit) {
    this.w = spawnWorker(`flashattn-wasm-${init.index}`);
    this.w.postMessage({ type: 'pool', ...init } satisfies ToWorker);
  }
  post(message: { type: 'run'; id: number; params: number }): void {
    this.w.postMessage(message satisfies ToWorker);
  }
  onMessage(listener: (m: WorkerMessage) => void): void {
    this.w.addEventListener('message', (e) => listener(e.data as WorkerMessage));
  }
  onFailure(listener: (e: Error) => void): void {
    const fail = (e: Error) => {
      if (!this.failed) {
        this.failed = true;
        listener(e);
      }
    };
    this.w.addEventListener('error', (e) => {
      e.preventDefault();
      fail(workerError(e));
    });
    this.w.addEventListener('messageerror', () => fail(new Error('wasm worker: a message could not be read')));
  }
  // A page does not exit, so there is nothing to keep alive.
  ref(): void {}
  unref(): void {}
  async terminate(): Promise<void> {
    this.failed = true;
    this.w.terminate();
  }
}

export const browserPlatform: Platform = {
  readBytes: async (url) => {
    const res = await fetch(url);
    if (!res.ok) throw new Error(`HTTP ${res.status} for ${url.href}`);
    return new Uint8Array(await res.arrayBuffer());
  },
  spawn: (init) => new BrowserWorker(init),
  defaultThreads: () => Math.max(1, globalThis.navigator?.hardwareConcurrency ?? 1),
};
