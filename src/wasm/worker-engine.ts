/**
 * A single-threaded wasm engine living in one Web Worker (worker-browser.ts, role 'host'), so the
 * page's main thread never computes. Each call posts the validated Problem (its tensors are copied)
 * and gets the output back by transfer. `unsupported` must answer synchronously, so the page keeps
 * an idle copy of the driver, never run, configured exactly like the worker's: the predicate the
 * façade enforces is the one the worker applies.
 */
import type { Backend, BackendOutput } from '../backend.js';
import { debug } from '../debug.js';
import type { Problem } from '../problem.js';
import type { AnyTensor, Tensor } from '../types.js';
import { createWasmBackendWith } from './core.js';
import type { LoadedKernel } from './kernel-browser.js';
import { browserPlatform, spawnWorker, workerError } from './platform-browser.js';
import type { FromHost, ToWorker } from './worker-browser.js';

interface Pending { resolve(o: BackendOutput): void; reject(e: Error): void }

const ERRORS: Record<string, new (message: string) => Error> = { RangeError, TypeError };

export class WorkerEngine implements Backend {
  readonly name = 'wasm' as const;
  readonly threads = 1;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private failure: Error | null = null;

  private constructor(private readonly worker: Worker, private readonly predicate: Backend) {
    worker.addEventListener('message', (e) => this.receive(e.data as FromHost));
    worker.addEventListener('error', (e) => { e.preventDefault(); this.fail(workerError(e)); });
  }

  static async start(kernel: LoadedKernel): Promise<WorkerEngine> {
    const options = { threads: 1, sharedMemory: kernel.shared };
    const predicate = await createWasmBackendWith(browserPlatform, kernel, options);
    const worker = spawnWorker('flashattn-wasm-engine');
    try {
      await new Promise<void>((resolve, reject) => {
        worker.onmessage = (e) => {
          const m = e.data as FromHost;
          if (m.type === 'ready') resolve();
          else reject(new Error(`wasm worker failed to start: ${(m as { message?: string }).message}`));
        };
        worker.onerror = (e) => { e.preventDefault(); reject(workerError(e)); };
        const { module, simd, source } = kernel;
        worker.postMessage({ type: 'host', kernel: { module, simd, source }, sharedMemory: kernel.shared } satisfies ToWorker);
      });
    } catch (e) {
      worker.terminate();
      throw e;
    }
    worker.onmessage = worker.onerror = null;
    return new WorkerEngine(worker, predicate);
  }

  get info() { return this.predicate.info; }

  unsupported(p: Problem<AnyTensor>): string | null {
    return this.predicate.unsupported(p);
  }

  run(p: Problem<AnyTensor>): Promise<BackendOutput> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise<BackendOutput>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ type: 'call', id, problem: p as Problem<Tensor>, poison: debug.poisonOutputs } satisfies ToWorker);
    });
  }

  async dispose(): Promise<void> {
    this.fail(new Error('flashattn: the wasm engine was disposed'));
    this.worker.terminate();
    await this.predicate.dispose();
  }

  private receive(m: FromHost): void {
    if (m.type === 'ready' || m.id === undefined) return;
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    if (m.type === 'result') p.resolve({ out: m.out, lse: m.lse });
    else p.reject(new (ERRORS[m.name] ?? Error)(m.message));
  }

  private fail(e: Error): void {
    this.failure ??= e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }
}
