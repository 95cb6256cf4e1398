/**
 * A single-threaded wasm engine living in one Web Worker (worker-browser.ts, role 'host'), so the
 * page's main thread never computes. Each call copies q, k and v into one staging buffer and
 * transfers it with the validated Problem; the worker sends it back with the output (transferred
 * too), and the next call reuses it: cloning the inputs instead would allocate fresh memory on both
 * sides per call, which measured slower than the kernel itself for a 1024 x 1024 prefill.
 * `unsupported` must answer synchronously, so the page keeps an idle copy of the driver, never run,
 * configured exactly like the worker's: the predicate the façade enforces is the one the worker applies.
 *
 * The KV caches live in the worker's memory (its core.ts makes them); the page holds handles
 * (worker-kvcache.ts). Their calls arrive validated by the façade, are posted in the order made (kNew,
 * vNew and q staged like a call's inputs), and the worker runs them in that order, so each sees the
 * writes before it; the worker's own checks (the 4 GiB layout) refuse a call before it writes anything.
 */
import type { Backend, BackendOutput } from '../backend.js';
import { knobs } from '../knobs.js';
import type { KvCacheSpec, KvProblem, KvWrite } from '../kvcache/problem.js';
import type { KvCache } from '../kvcache/types.js';
import type { Problem } from '../problem.js';
import type { AnyTensor, DeviceTensor, Tensor } from '../types.js';
import { createWasmBackendWith } from './core.js';
import { disposedError } from './pool.js';
import type { LoadedKernel } from './kernel-browser.js';
import { browserPlatform, spawnWorker, workerError } from './platform-browser.js';
import type { FromHost, KvRequest, ToWorker } from './worker-browser.js';
import { WorkerKvCaches } from './worker-kvcache.js';

/** A request posted and not answered: `answer` turns the worker's answer into the call's value. */
interface Pending {
  answer(m: Answer): void;
  reject(e: Error): void;
}

type Answer = Exclude<FromHost, { type: 'ready' | 'error' }>;
type Request = Extract<ToWorker, { type: 'call' }> | KvRequest;

const unexpected = (m: Answer, want: string) =>
  new Error(`flashattn: the wasm engine's worker answered '${m.type}' where '${want}' was due`);
/**
 * A call's answer as its output. The worker wrote into the staging buffer the results the caller has arrays
 * for (options.out / options.lse): they are copied into those arrays, which are the results.
 */
const output =
  (p: { outInto: AnyTensor | null; lseInto: AnyTensor | null }) =>
  (m: Answer): BackendOutput => {
    if (m.type !== 'result') throw unexpected(m, 'result');
    const back = (into: AnyTensor | null, got: Tensor | null): Tensor | null => {
      if (!into || !got) return got;
      ((into as Tensor).data as Float32Array).set(got.data as Float32Array);
      return into as Tensor;
    };
    return { out: back(p.outInto, m.out)!, lse: back(p.lseInto, m.lse) };
  };

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
  /** The KV caches' handles; a freed one is freed in the worker, after the calls posted before. */
  private readonly caches = new WorkerKvCaches((cache) => {
    if (!this.failure) this.worker.postMessage({ type: 'kvFree', cache } satisfies ToWorker);
  });

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
    const {
      tensors: [q, k, v],
      into: [outInto, lseInto],
      staging,
    } = this.stage([p.q, p.k, p.v] as Tensor[], p);
    const problem = { ...(p as Problem<Tensor>), q: q!, k: k!, v: v!, outInto, lseInto };
    const message = { type: 'call', id: this.nextId++, problem, poison: knobs.poisonOutputs } as const;
    return this.request(message, [staging], output(p));
  }

  /** This engine reads host tensors only: a resident q, k or v (a cache's k or v, another engine's) is a TypeError. */
  checkInputs(p: Problem<AnyTensor>): void {
    for (const n of ['q', 'k', 'v'] as const) this.caches.refuseResident(p[n], n);
  }

  createKvCache(spec: KvCacheSpec): Promise<KvCache> {
    if (this.failure) return Promise.reject(this.failure);
    const cache = this.caches.reserve();
    return this.request({ type: 'kvCreate', id: this.nextId++, cache, spec }, [], (m) => {
      if (m.type !== 'ok') throw unexpected(m, 'ok');
      return this.caches.made(spec, cache);
    });
  }

  async writeKvCache(p: KvWrite<AnyTensor>): Promise<void> {
    if (this.failure) throw this.failure;
    const cache = this.caches.idOf(p.cache);
    this.caches.refuseResident(p.kNew, 'kNew');
    this.caches.refuseResident(p.vNew, 'vNew');
    const {
      tensors: [kNew, vNew],
      staging,
    } = this.stage([p.kNew, p.vNew] as (Tensor | null)[]);
    const write = { ...(p as KvWrite<Tensor>), cache: null, kNew, vNew };
    await this.request({ type: 'kvWrite', id: this.nextId++, cache, write, staging }, [staging], (m) => {
      if (m.type !== 'ok') throw unexpected(m, 'ok');
    });
  }

  async attentionWithKvCache(p: KvProblem<AnyTensor>): Promise<BackendOutput> {
    if (this.failure) throw this.failure;
    const cache = this.caches.idOf(p.cache);
    this.caches.refuseResident(p.q, 'q');
    this.caches.refuseResident(p.kNew, 'options.kNew');
    this.caches.refuseResident(p.vNew, 'options.vNew');
    const {
      tensors: [q, kNew, vNew],
      into: [outInto, lseInto],
      staging,
    } = this.stage([p.q, p.kNew, p.vNew] as (Tensor | null)[], p);
    const problem = { ...(p as KvProblem<Tensor>), cache: null, q: q!, kNew, vNew, outInto, lseInto };
    const message = {
      type: 'kvCall',
      id: this.nextId++,
      cache,
      problem,
      poison: knobs.poisonOutputs,
      staging,
    } as const;
    return this.request(message, [staging], output(p));
  }

  /** A copy of a host tensor, or a KV cache's k or v read from the worker (after every call posted before). */
  async download(t: DeviceTensor): Promise<Tensor> {
    if (t === null || typeof t !== 'object')
      throw new TypeError(`Expected a resident tensor for download but received ${String(t)}`);
    if (this.failure) throw this.failure;
    const host = t as unknown as Tensor;
    if (t.location !== 'wasm' && t.location !== 'cuda' && ArrayBuffer.isView(host.data))
      return { data: host.data.slice(), shape: [...host.shape], dtype: host.dtype, location: 'cpu' };
    const { id, part } = this.caches.tensorOf(t, 'download');
    return this.request({ type: 'kvRead', id: this.nextId++, cache: id, part }, [], (m) => {
      if (m.type !== 'read') throw unexpected(m, 'read');
      return m.tensor;
    });
  }

  /** Posts a request; settles with its answer, or the worker's error, or the engine's failure. */
  private request<R>(message: Request, transfer: Transferable[], answer: (m: Answer) => R): Promise<R> {
    const call = new Promise<R>((resolve, reject) => {
      this.pending.set(message.id, { answer: (m) => resolve(answer(m)), reject });
      this.worker.postMessage(message satisfies ToWorker, { transfer });
    });
    this.calls.add(call);
    const forget = () => this.calls.delete(call);
    call.then(forget, forget);
    return call;
  }

  /**
   * Copies of host tensors in one transferable buffer (the spare one when it fits); nulls stay null. With
   * `results`, room after them for the results the caller has arrays for (`outInto` / `lseInto`, not copied):
   * the worker writes those there, so neither side allocates them.
   */
  private stage<T extends (Tensor | null)[]>(
    ts: T,
    results?: { outInto: AnyTensor | null; lseInto: AnyTensor | null },
  ): { tensors: T; into: [Tensor | null, Tensor | null]; staging: ArrayBuffer } {
    const room = results ? [results.outInto as Tensor | null, results.lseInto as Tensor | null] : [];
    const bytes = [...ts, ...room].reduce((n, t) => n + align8(t?.data.byteLength ?? 0), 0);
    let staging = new ArrayBuffer(0);
    if (this.spare && this.spare.byteLength >= bytes) [staging, this.spare] = [this.spare, null];
    else if (bytes > 0) staging = new ArrayBuffer(bytes);
    let at = 0;
    const place = (t: Tensor | null, copy: boolean): Tensor | null => {
      if (!t) return null;
      // by dtype, not instanceof: a Float32Array from another realm (an iframe) is one too
      const data =
        t.dtype === 'float32'
          ? new Float32Array(staging, at, t.data.length)
          : new Uint16Array(staging, at, t.data.length);
      if (copy) data.set(t.data);
      at += align8(t.data.byteLength);
      return { ...t, data };
    };
    const tensors = ts.map((t) => place(t, true)) as T;
    return { tensors, into: [place(room[0] ?? null, false), place(room[1] ?? null, false)], staging };
  }

  /** Settles once every call posted so far has. */
  async synchronize(): Promise<void> {
    await Promise.allSettled(this.calls);
  }

  async dispose(): Promise<void> {
    this.fail(disposedError());
    this.caches.disposeAll();
    this.spare = null;
    this.worker.terminate();
    await this.predicate.dispose();
  }

  private receive(m: FromHost): void {
    if (m.type === 'ready' || m.id === undefined) return;
    const staging = 'staging' in m ? m.staging : undefined;
    if (staging && staging.byteLength <= KEEP_STAGING_BYTES && staging.byteLength > (this.spare?.byteLength ?? -1))
      this.spare = staging;
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    if (m.type !== 'error') {
      try {
        p.answer(m);
      } catch (e) {
        p.reject(e as Error);
      }
    } else p.reject(new (ERRORS[m.name] ?? Error)(m.message));
  }

  private fail(e: Error): void {
    this.failure ??= e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }
}
