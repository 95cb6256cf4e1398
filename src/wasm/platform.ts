/**
 * What the wasm engine needs from its host, kept apart from the kernel driver so that a browser
 * entry (fetch + Web Workers) can be added without touching core.ts or plan.ts.
 */

/** The worker side of the protocol, whatever the host. */
export type WorkerMessage =
  | { type: 'ready' }
  | { type: 'done'; id: number }
  | { type: 'error'; id?: number; message: string };

/** Sent to a worker once, at start: the compiled kernel, the shared memory and the thread index. */
export interface WorkerInit {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  index: number;
}

/** A started worker. `run` messages are `{ type: 'run', id, params }`. */
export interface WorkerHandle {
  post(message: { type: 'run'; id: number; params: number }): void;
  onMessage(listener: (m: WorkerMessage) => void): void;
  /** An uncaught error or an exit: the worker is gone. */
  onFailure(listener: (e: Error) => void): void;
  /** Keep the host alive while work is in flight; let it exit when idle. */
  ref(): void;
  unref(): void;
  terminate(): Promise<void>;
}

export interface Platform {
  /** The kernel's bytes. */
  readBytes(url: URL): Promise<Uint8Array<ArrayBuffer>>;
  /** Starts a worker that instantiates the kernel on the shared memory (see worker protocol). */
  spawn(init: WorkerInit): WorkerHandle;
  /** Threads to use when the caller does not say. */
  defaultThreads(): number;
}
