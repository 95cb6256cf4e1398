/**
 * The wasm engine in a browser or an edge runtime. On a cross-origin isolated page (so
 * SharedArrayBuffer), the page drives core.ts and Web Workers compute on one shared memory, with
 * no copy beyond core's own, whatever the thread count; elsewhere one thread: the whole engine in
 * one worker (inputs and outputs cross by postMessage), or, in a runtime without workers, on the
 * calling thread. `info.threadsReason` says which and why. Every set-up has the KV cache (in the
 * worker's memory for the one-worker engine); only the one-worker engine refuses `upload`.
 */
import type { Backend } from '../backend.js';
import type { Problem } from '../problem.js';
import type { AnyTensor, WasmSources } from '../types.js';
import { createWasmBackendWith } from './core.js';
import { loadKernel } from './kernel-browser.js';
import { browserPlatform } from './platform-browser.js';
import { WorkerEngine } from './worker-engine.js';

export interface BrowserWasmOptions {
  threads?: number;
  wasm: WasmSources;
}

type Plan = { threads: number; runsOn: 'workers' | 'one worker' | 'calling thread'; reason: string };

function planThreads(asked: number | undefined): Plan {
  const want = asked ?? browserPlatform.defaultThreads();
  if (typeof Worker !== 'function')
    return {
      threads: 1,
      runsOn: 'calling thread',
      reason: 'this runtime has no Web Workers, so the engine computes on the calling thread',
    };
  if (globalThis.crossOriginIsolated === true) {
    const n =
      want === 1
        ? asked === 1
          ? 'threads: 1 was asked; one worker computes'
          : 'one core; one worker computes'
        : `${want} workers compute`;
    return { threads: want, runsOn: 'workers', reason: `cross-origin isolated: ${n} on the page's shared memory` };
  }
  const why =
    want > 1
      ? `${want} threads need SharedArrayBuffer, which needs a cross-origin isolated page (headers ` +
        'Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp)'
      : asked === 1
        ? 'threads: 1 was asked'
        : 'one core';
  return {
    threads: 1,
    runsOn: 'one worker',
    reason: `${why}; the engine computes in one worker, inputs and outputs copied by postMessage`,
  };
}

export async function createBrowserWasmBackend(o: BrowserWasmOptions): Promise<Backend> {
  const plan = planThreads(o.threads);
  const kernel = await loadKernel(o.wasm, plan.runsOn !== 'workers');
  const impl: Backend =
    plan.runsOn === 'workers'
      ? await createWasmBackendWith(browserPlatform, kernel, { threads: plan.threads, offThread: true })
      : plan.runsOn === 'one worker'
        ? await WorkerEngine.start(kernel)
        : await createWasmBackendWith(browserPlatform, kernel, { threads: 1, sharedMemory: kernel.shared });
  const info = {
    ...impl.info,
    runsOn: plan.runsOn,
    threadsReason: plan.reason,
    crossOriginIsolated: globalThis.crossOriginIsolated === true,
    sharedMemory: kernel.shared,
  };
  // Uploaded tensors live in the page's wasm memory; an engine in one worker keeps only its KV caches there.
  const noUpload = async (): Promise<never> => {
    throw new TypeError(
      'Expected a cross-origin isolated page (or a runtime without workers) for upload on the wasm engine; ' +
        'here the engine computes in one worker, so tensors cannot stay resident: pass host tensors ' +
        '(a KV cache, engine.createKvCache, does stay in the worker)',
    );
  };
  return {
    name: impl.name,
    threads: impl.threads,
    info,
    unsupported: (p) => impl.unsupported(p),
    run: (p) => impl.run(p),
    ...(impl.checkInputs ? { checkInputs: (p: Problem<AnyTensor>) => impl.checkInputs!(p) } : {}),
    upload: impl.upload ? (t) => impl.upload!(t) : noUpload,
    download: (t) => impl.download!(t),
    synchronize: () => impl.synchronize?.() ?? Promise.resolve(),
    createKvCache: (spec) => impl.createKvCache!(spec),
    writeKvCache: (p) => impl.writeKvCache!(p),
    attentionWithKvCache: (p) => impl.attentionWithKvCache!(p),
    dispose: () => impl.dispose(),
  };
}
