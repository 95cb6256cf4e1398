/** Node's side of the wasm engine: files from disk, worker_threads workers, os core count. */
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Platform, WorkerHandle, WorkerInit, WorkerMessage } from './platform.js';

/**
 * The worker: instantiate the kernel on the shared memory, then run(params, index) for each
 * 'run' message. It is evaluated from source so it works the same from dist/ and from src/
 * (under a TypeScript test runner), with no file of its own to locate.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { module, memory, index } = workerData;
let run;
try {
  run = new WebAssembly.Instance(module, { env: { memory } }).exports.run;
  parentPort.postMessage({ type: 'ready' });
} catch (e) {
  parentPort.postMessage({ type: 'error', message: String((e && e.message) || e) });
}
parentPort.on('message', (m) => {
  try {
    run(m.params, index);
    parentPort.postMessage({ type: 'done', id: m.id });
  } catch (e) {
    parentPort.postMessage({ type: 'error', id: m.id, message: String((e && e.message) || e) });
  }
});
`;

class NodeWorker implements WorkerHandle {
  private readonly w: Worker;
  private failed = false;
  constructor(init: WorkerInit) {
    this.w = new Worker(WORKER_SOURCE, { eval: true, workerData: init, name: `flashattn-wasm-${init.index}` });
  }
  post(message: { type: 'run'; id: number; params: number }): void {
    this.w.postMessage(message);
  }
  onMessage(listener: (m: WorkerMessage) => void): void {
    this.w.on('message', listener);
  }
  onFailure(listener: (e: Error) => void): void {
    const fail = (e: Error) => {
      if (!this.failed) {
        this.failed = true;
        listener(e);
      }
    };
    this.w.on('error', fail);
    this.w.on('exit', (code) => fail(new Error(`wasm worker exited (code ${code})`)));
  }
  ref(): void {
    this.w.ref();
  }
  unref(): void {
    this.w.unref();
  }
  async terminate(): Promise<void> {
    this.failed = true;
    await this.w.terminate();
  }
}

export const nodePlatform: Platform = {
  readBytes: async (url) => new Uint8Array(await readFile(url.protocol === 'file:' ? fileURLToPath(url) : url.href)),
  spawn: (init) => new NodeWorker(init),
  defaultThreads: () => (typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length),
};
