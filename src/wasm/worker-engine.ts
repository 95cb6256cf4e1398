/**
 * A single-threaded wasm engine living in one Web Worker (worker-browser.ts, role 'host'), so the
 * page's main thread never computes. Each call copies q, k and v into one staging buffer and
 * transfers it with the validated Problem; the worker sends it back with the output (transferred
 * too), and the next call reuses it: cloning the inputs instead would allocate fresh memory on both
 * sides per call, which measured slower than the kernel itself for a 1024 x 1024 prefill.
 * `unsupported` must answer synchronously, so the page keeps an idle copy of the driver, never run,
 * configured exactly like the worker's: the predicate the façade enforces is the one the worker applies.
 */
import type { Backend, BackendOutput } from '../backend.js';
import { knobs } from '../knobs.js';
import type { Problem } from '../problem.js';
import type { AnyTensor, Tensor } from '../types.js';
import { createWasmBackendWith } from './core.js';
import { disposedError } from './pool.js';
import type { LoadedKernel } from './kernel-browser.js';
import { browserPlatform, spawnWorker, workerError } from './platform-browser.js';
import type { FromHost, ToWorker } from './worker-browser.js';

interface Pending {
  resolve(o: BackendOutput): void;
  reject(e: Error): void;
}

const ERRORS: Record<string, new (message: string) => Error> = { RangeError, TypeError };

/** A staging buffer larger than this is not kept between calls (such calls are long anyway). */
const KEEP_STAGING_BYTES = 64 << 20;
const align8 = (n: number) => Math.ceil(n / 8) * 8;

export class WorkerEngine implements Backend {
  readonly name = 'wasm' as const;
  readonly threads = 1;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  /** The calls not settled yet (synchronize waits for them). */
  private readonly calls = new Set<Promise<unknown>>();
  private failure: Error | null = null;
  private spare: ArrayBuffer | null = null;

  private constructor(
    private readonly worker: Worker,
    private readonly predicate: Backend,
  ) {
    worker.addEventListener('message', (e) => this.receive(e.data as FromHost));
    worker.addEventListener('error', (e) => {
      e.preventDefault();
      this.fail(
        new Error(`flashattn: the wasm engine's worker failed (${workerError(e).message}); create a new engine`),
      );
    });
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
        worker.onerror = (e) => {
          e.preventDefault();
          reject(workerError(e));
        };
        const { module, simd, source } = kernel;
        worker.postMessage({
          type: 'host',
          kernel: { module, simd, source },
          sharedMemory: kernel.shared,
        } satisfies ToWorker);
      });
    } catch (e) {
      worker.terminate();
      throw e;
    }
    worker.onmessage = worker.onerror = null;
    return new WorkerEngine(worker, predicate);
  }

  get info() {
    return this.predicate.info;
  }

  unsupported(p: Problem<AnyTensor>): string | null {
    return this.predicate.unsupported(p);
  }

  run(p: Problem<AnyTensor>): Promise<BackendOutput> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    const { problem, staging } = this.stage(p as Problem<Tensor>);
    const call = new Promise<BackendOutput>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ type: 'call', id, problem, poison: knobs.poisonOutputs } satisfies ToWorker, {
        transfer: [staging],
      });
    });
    this.calls.add(call);
    const forget = () => this.calls.delete(call);
    call.then(forget, forget);
    return call;
  }

  /** The problem with q, k and v copied into one transferable buffer (the spare one when it fits). */
  private stage(p: Problem<Tensor>): { problem: Problem<Tensor>; staging: ArrayBuffer } {
    const bytes = align8(p.q.data.byteLength) + align8(p.k.data.byteLength) + align8(p.v.data.byteLength);
    let staging = new ArrayBuffer(0);
    if (this.spare && this.spare.byteLength >= bytes) [staging, this.spare] = [this.spare, null];
    else if (bytes > 0) staging = new ArrayBuffer(bytes);
    let at = 0;
    const copy = (t: Tensor): Tensor => {
      const data =
        t.data instanceof Float32Array
          ? new Float32Array(staging, at, t.data.length)
          : new Uint16Array(staging, at, t.data.length);
      data.set(t.data);
      at += align8(t.data.byteLength);
      return { ...t, data };
    };
    return { problem: { ...p, q: copy(p.q), k: copy(p.k), v: copy(p.v) }, staging };
  }

  /** Settles once every call posted so far has. */
  async synchronize(): Promise<void> {
    await Promise.allSettled(this.calls);
  }

  async dispose(): Promise<void> {
    this.fail(disposedError());
    this.spare = null;
    this.worker.terminate();
    await this.predicate.dispose();
  }

  private receive(m: FromHost): void {
    if (m.type === 'ready' || m.id === undefined) return;
    if (
      m.staging &&
      m.staging.byteLength <= KEEP_STAGING_BYTES &&
      m.staging.byteLength > (this.spare?.byteLength ?? -1)
    )
      this.spare = m.staging;
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
