/**
 * Workers sharing one WebAssembly.Memory. A call posts `run` to every worker; each takes work
 * items from the kernel's atomic counter until none are left and answers `done`. The caller
 * awaits the answers (messages: the calling thread never spins). Workers are unref'd while idle
 * so an engine that is not disposed does not keep the process alive, and ref'd during a call.
 *
 * A worker that dies fails the call it was in (the other workers finish the items it did not
 * take) and is replaced, so the engine keeps working; terminate() rejects every call in flight.
 */
import type { Platform, WorkerHandle, WorkerMessage } from './platform.js';

interface Pending {
  resolve(): void;
  reject(e: Error): void;
}

/** The error of a call that the engine's dispose() cut short. */
export function disposedError(): Error {
  const e = new Error('flashattn: the engine was disposed while this call was in flight or queued');
  e.name = 'AbortError';
  return e;
}

class Slot {
  readonly pending = new Map<number, Pending>();
  handle!: WorkerHandle;
  /** Settles when the current worker has instantiated the kernel. */
  ready!: Promise<void>;
  /** Why this slot can run nothing any more (a replacement failed to start). */
  broken: Error | null = null;

  constructor(
    private readonly pool: WorkerPool,
    readonly index: number,
  ) {}

  start(): void {
    const handle = this.pool.spawn(this.index);
    this.handle = handle;
    this.ready = new Promise<void>((resolve, reject) => {
      handle.onMessage((m: WorkerMessage) => {
        if (m.type === 'ready') {
          handle.unref();
          return resolve();
        }
        if (m.id === undefined)
          return reject(new Error(`wasm worker ${this.index} failed to start: ${(m as { message: string }).message}`));
        const p = this.pending.get(m.id);
        if (!p) return;
        this.pending.delete(m.id);
        if (m.type === 'done') p.resolve();
        else p.reject(new Error(`wasm worker ${this.index}: ${m.message}`));
      });
      handle.onFailure((e) => {
        reject(e);
        this.failAll(
          new Error(
            `flashattn: wasm worker ${this.index} died during the call (${e.message}); it was replaced and the engine keeps working`,
          ),
        );
        if (!this.pool.closed) this.start();
      });
    });
    this.ready.catch((e: Error) => {
      if (handle === this.handle) this.broken = e;
    });
  }

  failAll(e: Error): void {
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }
}

export class WorkerPool {
  private nextId = 1;
  closed = false;
  private readonly slots: Slot[];

  private constructor(
    private readonly platform: Platform,
    private readonly module: WebAssembly.Module,
    private readonly memory: WebAssembly.Memory,
    count: number,
  ) {
    this.slots = Array.from({ length: count }, (_, i) => new Slot(this, i));
  }

  static async start(
    platform: Platform,
    module: WebAssembly.Module,
    memory: WebAssembly.Memory,
    count: number,
  ): Promise<WorkerPool> {
    const pool = new WorkerPool(platform, module, memory, count);
    for (const s of pool.slots) s.start();
    try {
      await Promise.all(pool.slots.map((s) => s.ready));
    } catch (e) {
      await pool.terminate();
      throw e;
    }
    return pool;
  }

  /** @internal a worker for slot `index` (Slot.start). */
  spawn(index: number): WorkerHandle {
    return this.platform.spawn({ module: this.module, memory: this.memory, index });
  }

  get size(): number {
    return this.slots.length;
  }

  /** Every worker runs the kernel on `params`; resolves when all are done. */
  async run(params: number): Promise<void> {
    if (this.closed) throw disposedError();
    await Promise.all(this.slots.map((s) => s.ready.catch(() => undefined)));
    for (const s of this.slots)
      if (s.broken)
        throw new Error(
          `flashattn: the wasm engine lost worker ${s.index} and could not start another (${s.broken.message}); create a new engine`,
        );
    if (this.closed) throw disposedError();
    const id = this.nextId++;
    const done = this.slots.map(
      (s) =>
        new Promise<void>((resolve, reject) => {
          s.pending.set(id, { resolve, reject });
          s.handle.ref();
          s.handle.post({ type: 'run', id, params });
        }),
    );
    const results = await Promise.allSettled(done);
    for (const s of this.slots) s.handle.unref();
    const bad = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (bad) throw bad.reason;
  }

  /** Stops every worker; the calls in flight reject with disposedError(). */
  async terminate(): Promise<void> {
    this.closed = true;
    for (const s of this.slots) s.failAll(disposedError());
    await Promise.all(this.slots.map((s) => s.handle?.terminate()));
  }
}
