/**
 * The browser's wasm worker script, in one of two roles chosen by its first message:
 *  - 'pool': a thread of a cross-origin isolated engine. It instantiates the kernel on the page's
 *    shared memory and answers each 'run' like the Node pool worker (platform.ts's protocol).
 *  - 'host': the whole single-threaded engine (core.ts with its own, unshared memory), so that the
 *    page's main thread never computes. It answers each 'call' (a validated Problem whose q, k and v
 *    lie in one transferred staging buffer) with the output and the staging buffer, and keeps the
 *    engine's KV caches (core.ts's, numbered by the page): 'kvCreate', 'kvWrite' and 'kvCall' (validated
 *    on the page; kNew, vNew and q in a staging buffer likewise), 'kvRead' (a cache's k or v) and 'kvFree'.
 *    Messages run one at a time, in the order posted.
 * scripts/build-browser.mjs bundles this file into one classic script (dist/wasm/worker-source.js),
 * which the page starts from a Blob URL: nothing has to be found next to the page or a bundle.
 */
import type { Backend } from '../backend.js';
import { setKnobs } from '../knobs.js';
import type { KvCacheSpec, KvProblem, KvWrite } from '../kvcache/problem.js';
import type { KvCache } from '../kvcache/types.js';
import type { Problem } from '../problem.js';
import type { Tensor } from '../types.js';
import { type CompiledKernel, createWasmBackendWith } from './core.js';
import type { Platform, WorkerInit, WorkerMessage } from './platform.js';

export type ToWorker =
  | ({ type: 'pool' } & WorkerInit)
  | { type: 'run'; id: number; params: number }
  | { type: 'host'; kernel: CompiledKernel; sharedMemory: boolean }
  | { type: 'call'; id: number; problem: Problem<Tensor>; poison: boolean }
  | KvRequest
  | { type: 'kvFree'; cache: number };

/** The host's KV cache requests that get an answer. `cache` is the pool's number; `null` stands for the cache object. */
export type KvRequest =
  | { type: 'kvCreate'; id: number; cache: number; spec: KvCacheSpec }
  | { type: 'kvWrite'; id: number; cache: number; write: KvWrite<Tensor, null>; staging: ArrayBuffer }
  | {
      type: 'kvCall';
      id: number;
      cache: number;
      problem: KvProblem<Tensor, null>;
      poison: boolean;
      staging: ArrayBuffer;
    }
  | { type: 'kvRead'; id: number; cache: number; part: 'k' | 'v' };

export type FromHost =
  | { type: 'ready' }
  | { type: 'result'; id: number; out: Tensor; lse: Tensor | null; staging: ArrayBuffer }
  | { type: 'ok'; id: number; staging?: ArrayBuffer }
  | { type: 'read'; id: number; tensor: Tensor }
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
  const caches = new Map<number, KvCache>();
  // Calls run one after another, so each one's poison switch is set right before it starts.
  let queue: Promise<void> = Promise.resolve();
  next = (c) => {
    if (c.type !== 'pool' && c.type !== 'host' && c.type !== 'run')
      queue = queue.then(() => hostMessage(engine, caches, c));
  };
  post({ type: 'ready' });
}

type HostMessage = Exclude<ToWorker, { type: 'pool' | 'host' | 'run' }>;

/** One message of the host role. The page's staging buffer goes back with the answer, for its next call. */
async function hostMessage(engine: Backend, caches: Map<number, KvCache>, c: HostMessage): Promise<void> {
  if (c.type === 'kvFree') {
    caches.get(c.cache)?.dispose();
    caches.delete(c.cache);
    return;
  }
  const staging = c.type === 'call' ? (c.problem.q.data.buffer as ArrayBuffer) : 'staging' in c ? c.staging : null;
  const back = staging ? [staging] : [];
  const cacheOf = (id: number): KvCache => {
    const cache = caches.get(id);
    if (!cache) throw new TypeError('Expected a KV cache that is not disposed for cache but received a disposed cache');
    return cache;
  };
  const result = (r: { out: unknown; lse: unknown }) => {
    const out = r.out as Tensor,
      lse = r.lse as Tensor | null;
    // results written into the staging buffer (the caller's options.out / options.lse) go back with it
    const transfer = new Set<ArrayBufferLike>([...back, out.data.buffer, ...(lse ? [lse.data.buffer] : [])]);
    post({ type: 'result', id: c.id, out, lse, staging: staging! }, [...transfer] as Transferable[]);
  };
  try {
    switch (c.type) {
      case 'call':
        setKnobs({ poisonOutputs: c.poison });
        result(await engine.run(c.problem));
        break;
      case 'kvCall':
        setKnobs({ poisonOutputs: c.poison });
        result(await engine.attentionWithKvCache!({ ...c.problem, cache: cacheOf(c.cache) }));
        break;
      case 'kvWrite':
        await engine.writeKvCache!({ ...c.write, cache: cacheOf(c.cache) });
        post({ type: 'ok', id: c.id, staging: staging! }, back);
        break;
      case 'kvCreate':
        caches.set(c.cache, await engine.createKvCache!(c.spec));
        post({ type: 'ok', id: c.id });
        break;
      case 'kvRead': {
        const tensor = await engine.download!(cacheOf(c.cache)[c.part]);
        post({ type: 'read', id: c.id, tensor }, [tensor.data.buffer]);
        break;
      }
    }
  } catch (e) {
    post({ type: 'error', id: c.id, ...describe(e), ...(staging ? { staging } : {}) }, back);
  }
}
