/**
 * Workers sharing one WebAssembly.Memory. A call posts `run` to every worker; each takes work
 * items from the kernel's atomic counter until none are left and answers `done`. The caller
 * awaits the answers (messages: the calling thread never spins). Workers are unref'd while idle
 * so an engine that is not disposed does not keep the process alive, and ref'd during a call.
 */
import type { Platform, WorkerHandle, WorkerMessage } from './platform.js';

interface Pending { resolve(): void; reject(e: Error): void }

class Slot {
  readonly pending = new Map<number, Pending>();
  failure: Error | null = null;
  constructor(readonly handle: WorkerHandle) {}
}

export class WorkerPool {
  private nextId = 1;
  private disposed = false;

  private constructor(private readonly slots: Slot[]) {}

  static async start(platform: Platform, module: WebAssembly.Module, memory: WebAssembly.Memory, count: number): Promise<WorkerPool> {
    const slots: Slot[] = [];
    const ready: Promise<void>[] = [];
    for (let index = 0; index < count; index++) {
      const slot = new Slot(platform.spawn({ module, memory, index }));
      slots.push(slot);
      ready.push(new Promise<void>((resolve, reject) => {
        slot.handle.onMessage((m: WorkerMessage) => {
          if (m.type === 'ready') return resolve();
          if (m.id === undefined) return reject(new Error(`wasm worker ${index} failed to start: ${(m as { message: string }).message}`));
          const p = slot.pending.get(m.id);
          if (!p) return;
          slot.pending.delete(m.id);
          if (m.type === 'done') p.resolve();
          else p.reject(new Error(`wasm worker ${index}: ${m.message}`));
        });
        slot.handle.onFailure((e) => {
          slot.failure = e;
          reject(e);
          for (const p of slot.pending.values()) p.reject(e);
          slot.pending.clear();
        });
      }));
    }
    const pool = new WorkerPool(slots);
    try {
      await Promise.all(ready);
    } catch (e) {
      await pool.terminate();
      throw e;
    }
    for (const s of slots) s.handle.unref();
    return pool;
  }

  get size(): number { return this.slots.length; }

  /** Every worker runs the kernel on `params`; resolves when all are done. */
  async run(params: number): Promise<void> {
    if (this.disposed) throw new Error('flashattn: the wasm engine was disposed');
    const id = this.nextId++;
    const done = this.slots.map((s) => {
      if (s.failure) return Promise.reject(s.failure);
      return new Promise<void>((resolve, reject) => {
        s.pending.set(id, { resolve, reject });
        s.handle.ref();
        s.handle.post({ type: 'run', id, params });
      });
    });
    const results = await Promise.allSettled(done);
    for (const s of this.slots) if (!s.failure) s.handle.unref();
    const bad = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (bad) throw bad.reason;
  }

  async terminate(): Promise<void> {
    this.disposed = true;
    await Promise.all(this.slots.map((s) => s.handle.terminate()));
  }
}
