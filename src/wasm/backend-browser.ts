/**
 * The wasm engine in a browser or an edge runtime. Where threads > 1 can run (a cross-origin
 * isolated page, so SharedArrayBuffer), the page drives core.ts and Web Workers compute on one
 * shared memory; otherwise the whole engine runs in one worker, or, in a runtime without workers,
 * on the calling thread. `info.threadsReason` says which and why.
 */
import type { Backend } from '../backend.js';
import type { WasmSources } from '../types.js';
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
  const isolated = globalThis.crossOriginIsolated === true;
  const want = asked ?? browserPlatform.defaultThreads();
  if (typeof Worker !== 'function')
    return { threads: 1, runsOn: 'calling thread', reason: 'this runtime has no Web Workers, so the engine computes on the calling thread' };
  if (want > 1 && !isolated) {
    return {
      threads: 1, runsOn: 'one worker',
      reason: `${want} threads need SharedArrayBuffer, which needs a cross-origin isolated page (headers ` +
        'Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp); computing in one worker',
    };
  }
  if (want === 1) {
    return { threads: 1, runsOn: 'one worker', reason: asked === 1 ? 'threads: 1 was asked; computing in one worker' : 'one core; computing in one worker' };
  }
  return { threads: want, runsOn: 'workers', reason: `cross-origin isolated: ${want} workers share one memory` };
}

export async function createBrowserWasmBackend(o: BrowserWasmOptions): Promise<Backend> {
  const plan = planThreads(o.threads);
  const kernel = await loadKernel(o.wasm, plan.threads === 1);
  const impl = plan.runsOn === 'workers' ? await createWasmBackendWith(browserPlatform, kernel, { threads: plan.threads })
    : plan.runsOn === 'one worker' ? await WorkerEngine.start(kernel)
      : await createWasmBackendWith(browserPlatform, kernel, { threads: 1, sharedMemory: kernel.shared });
  const info = {
    ...impl.info, runsOn: plan.runsOn, threadsReason: plan.reason,
    crossOriginIsolated: globalThis.crossOriginIsolated === true, sharedMemory: kernel.shared,
  };
  return {
    name: impl.name, threads: impl.threads, info,
    unsupported: (p) => impl.unsupported(p),
    run: (p) => impl.run(p),
    dispose: () => impl.dispose(),
  };
}
