/**
 * The browser's wasm worker script, in one of two roles chosen by its first message:
 *  - 'pool': a thread of a cross-origin isolated engine. It instantiates the kernel on the page's
 *    shared memory and answers each 'run' like the Node pool worker (platform.ts's protocol).
 *  - 'host': the whole single-threaded engine (core.ts with its own, unshared memory), so that the
 *    page's main thread never computes. It answers each 'call' (a validated Problem whose q, k and v
 *    lie in one transferred staging buffer) with the output and the staging buffer.
 * scripts/build-browser.mjs bundles this file into one classic script (dist/wasm/worker-source.js),
 * which the page starts from a Blob URL: nothing has to be found next to the page or a bundle.
 */
import type { Backend } from '../backend.js';
import { setKnobs } from '../knobs.js';
import type { Problem } from '../problem.js';
import type { Tensor } from '../types.js';
import { type CompiledKernel, createWasmBackendWith } from './core.js';
import type { Platform, WorkerInit, WorkerMessage } from './platform.js';

export type ToWorker =
  | ({ type: 'pool' } & WorkerInit)
  | { type: 'run'; id: number; params: number }
  | { type: 'host'; kernel: CompiledKernel; sharedMemory: boolean }
  | { type: 'call'; id: number; problem: Problem<Tensor>; poison: boolean };

export type FromHost =
  | { type: 'ready' }
  | { type: 'result'; id: number; out: Tensor; lse: Tensor | null; staging: ArrayBuffer }
  | { type: 'error'; id?: number; name: string; message: string; staging?: ArrayBuffer };

interface Scope {
  onmessage: ((e: MessageEvent) => void) | null;
  postMessage(message: unknown, options?: StructuredSerializeOptions): void;
}

const scope = globalThis as unknown as Scope;
const post = (m: WorkerMessage | FromHost, transfer: Transferable[] = []) => scope.postMessage(m, { transfer });
const describe = (e: unknown) => ({ name: (e as Error)?.name ?? 'Error', message: String((e as Error)?.message ?? e) });

/** The host engine computes on this thread: it never starts workers or reads files. */
const hostPlatform: Platform = {
  readBytes: () => Promise.reject(new Error('the host worker is given a compiled kernel')),
  spawn: () => {
    throw new Error('the host worker computes on one thread');
  },
  defaultThreads: () => 1,
};

let next: (m: ToWorker) => void = start;
scope.onmessage = (e) => next(e.data as ToWorker);

function start(m: ToWorker): void {
  if (m.type === 'pool') startPool(m);
  else if (m.type === 'host') void startHost(m);
  else
    post({
      type: 'error',
      name: 'Error',
      message: `wasm worker: expected 'pool' or 'host' first but received '${m.type}'`,
    });
}

function startPool(m: WorkerInit): void {
  let run: (params: number, thread: number) => void;
  try {
    run = (new WebAssembly.Instance(m.module, { env: { memory: m.memory } }).exports as { run: typeof run }).run;
  } catch (e) {
    post({ type: 'error', message: describe(e).message });
    return;
  }
  next = (r) => {
    if (r.type !== 'run') return;
    try {
      run(r.params, m.index);
      post({ type: 'done', id: r.id });
    } catch (e) {
      post({ type: 'error', id: r.id, message: describe(e).message });
    }
  };
  post({ type: 'ready' });
}

async function startHost(m: { kernel: CompiledKernel; sharedMemory: boolean }): Promise<void> {
  let engine: Backend;
  try {
    engine = await createWasmBackendWith(hostPlatform, m.kernel, { threads: 1, sharedMemory: m.sharedMemory });
  } catch (e) {
    post({ type: 'error', ...describe(e) });
    return;
  }
  // Calls run one after another, so each one's poison switch is set right before it starts.
  let queue: Promise<void> = Promise.resolve();
  next = (c) => {
    if (c.type !== 'call') return;
    queue = queue.then(async () => {
      // The page's staging buffer (q, k and v) goes back with the answer, for its next call.
      const staging = c.problem.q.data.buffer as ArrayBuffer;
      try {
        setKnobs({ poisonOutputs: c.poison });
        const r = await engine.run(c.problem);
        const out = r.out as Tensor,
          lse = r.lse as Tensor | null;
        post({ type: 'result', id: c.id, out, lse, staging }, [
          staging,
          out.data.buffer,
          ...(lse ? [lse.data.buffer] : []),
        ]);
      } catch (e) {
        post({ type: 'error', id: c.id, ...describe(e), staging }, [staging]);
      }
    });
  };
  post({ type: 'ready' });
}
