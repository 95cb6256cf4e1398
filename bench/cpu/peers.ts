/**
 * onnxruntime peers, the runners: onnxruntime-node in process, and onnxruntime-web in a worker
 * thread per thread count (`ort.env.wasm.numThreads` is fixed once per module instance). The
 * models they run are built in peer-models.ts.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { Timing, TimingPolicy } from '../../dist/cli/bench/timing.js';
import { summarize, wantMore } from '../../dist/cli/bench/timing.js';
import { encodeModel } from './onnx.js';
import { f32, type OrtPlan } from './peer-models.js';

export { type FeedSpec, type OrtPlan, ortPlans } from './peer-models.js';

export interface PeerRun {
  timing: Timing;
  /** Packed `[totalQ, H, Dv]` output of the first (warm-up) run. */
  out: Float32Array;
}

export interface PeerRunner {
  readonly name: string;
  readonly version: string;
  run(p: OrtPlan, policy: TimingPolicy): Promise<PeerRun>;
  dispose(): Promise<void>;
}

/* Minimal structural types of the onnxruntime API used here (both packages share it). */
interface OrtTensorLike {
  data: unknown;
  dispose?(): void;
}
interface OrtSession {
  run(feeds: Record<string, OrtTensorLike>): Promise<Record<string, OrtTensorLike>>;
  release(): Promise<void>;
}
interface OrtModule {
  env: { versions?: Record<string, string>; wasm?: { numThreads?: number } };
  Tensor: new (type: string, data: unknown, dims: readonly number[]) => OrtTensorLike;
  InferenceSession: { create(model: Uint8Array, options?: Record<string, unknown>): Promise<OrtSession> };
}

/** Loads onnxruntime-node; a reason string when it is not installed or its binary does not load. */
export async function loadOrtNode(threads: number): Promise<PeerRunner | string> {
  let ort: OrtModule;
  try {
    const name = 'onnxruntime-node';
    ort = (await import(name)) as unknown as OrtModule;
    if (!ort.InferenceSession) ort = (ort as unknown as { default: OrtModule }).default;
  } catch (e) {
    return `not installed or its CPU binary does not load (${(e as Error).message.split('\n')[0]})`;
  }
  const options = {
    executionProviders: ['cpu'],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  };
  return {
    name: 'onnxruntime-node',
    version: ort.env.versions?.node ?? ort.env.versions?.common ?? '?',
    async run(p, policy) {
      const session = await ort.InferenceSession.create(p.model, options);
      try {
        const feeds = p.feeds.map((f) =>
          Object.fromEntries(Object.entries(f).map(([k, t]) => [k, new ort.Tensor(t.type, t.data, t.dims)])),
        );
        const out = new Float32Array(p.totalOut);
        const once = async (collect: boolean) => {
          for (let i = 0; i < feeds.length; i++) {
            const r = await session.run(feeds[i]!);
            if (collect) out.set(r[p.outputName]!.data as Float32Array, p.outOffsets[i]);
          }
        };
        for (let i = 0; i < Math.max(1, policy.warmup); i++) await once(i === 0);
        const times: number[] = [];
        while (wantMore(times, policy)) {
          const t0 = performance.now();
          await once(false);
          times.push(performance.now() - t0);
        }
        return { timing: summarize(times), out };
      } finally {
        await session.release();
      }
    },
    async dispose() {},
  };
}

/**
 * The onnxruntime-web worker: loads the package's Node build with `numThreads` set before the
 * first session, then serves one plan per message (timing loop as in timing.ts).
 */
const ORT_WEB_WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const want = (times, p) => {
  const n = times.length;
  if (n >= p.maxIters) return false;
  const spent = times.reduce((a, b) => a + b, 0);
  if (n >= 2 && spent >= p.maxTimeMs) return false;
  return n < p.minIters || spent < p.minTimeMs;
};
(async () => {
  let ort;
  try {
    ort = require(workerData.path);
    ort.env.wasm.numThreads = workerData.threads;
    ort.env.wasm.proxy = false;
    ort.env.logLevel = 'error';
    const s = await ort.InferenceSession.create(workerData.probe, { executionProviders: ['wasm'] });
    await s.release();
    parentPort.postMessage({ ready: true, version: ort.env.versions.web || ort.env.versions.common });
  } catch (e) {
    parentPort.postMessage({ ready: false, error: String(e && e.message || e) });
    return;
  }
  parentPort.on('message', async ({ id, plan: p, policy }) => {
    let session;
    try {
      session = await ort.InferenceSession.create(p.model, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
      const feeds = p.feeds.map((f) => Object.fromEntries(Object.entries(f).map(([k, t]) => [k, new ort.Tensor(t.type, t.data, t.dims)])));
      const out = new Float32Array(p.totalOut);
      const once = async (collect) => {
        for (let i = 0; i < feeds.length; i++) {
          const r = await session.run(feeds[i]);
          if (collect) out.set(r[p.outputName].data, p.outOffsets[i]);
        }
      };
      for (let i = 0; i < Math.max(1, policy.warmup); i++) await once(i === 0);
      const times = [];
      while (want(times, policy)) {
        const t0 = performance.now();
        await once(false);
        times.push(performance.now() - t0);
      }
      parentPort.postMessage({ id, times, out }, [out.buffer]);
    } catch (e) {
      parentPort.postMessage({ id, error: String(e && e.message || e) });
    } finally {
      if (session) await session.release();
    }
  });
})();
`;

/** A tiny model (Identity) used to start onnxruntime-web's runtime in the worker. */
function probeModel(): Uint8Array {
  return encodeModel({
    nodes: [{ opType: 'Identity', inputs: ['x'], outputs: ['y'] }],
    inputs: [f32('x', [1])],
    outputs: [f32('y', [1])],
    opsets: { '': 23 },
  });
}

/** Starts onnxruntime-web (wasm backend) with `threads` threads in a worker; a reason string when unavailable. */
export async function loadOrtWeb(threads: number): Promise<PeerRunner | string> {
  let path: string;
  try {
    path = createRequire(import.meta.url).resolve('onnxruntime-web');
  } catch {
    return 'not installed';
  }
  const worker = new Worker(ORT_WEB_WORKER, { eval: true, workerData: { path, threads, probe: probeModel() } });
  worker.unref();
  const first = await new Promise<{ ready: boolean; version?: string; error?: string }>((resolve) => {
    worker.once('message', resolve);
    worker.once('error', (e) => resolve({ ready: false, error: e.message }));
  });
  if (!first.ready) {
    await worker.terminate();
    return `does not load (${first.error})`;
  }
  let nextId = 0;
  return {
    name: 'onnxruntime-web',
    version: first.version ?? '?',
    run(p, policy) {
      const id = nextId++;
      return new Promise<PeerRun>((resolve, reject) => {
        const onMessage = (m: { id: number; times?: number[]; out?: Float32Array; error?: string }) => {
          if (m.id !== id) return;
          worker.off('message', onMessage);
          worker.off('error', onError);
          if (m.error !== undefined) reject(new Error(m.error));
          else resolve({ timing: summarize(m.times!), out: m.out! });
        };
        const onError = (e: Error) => {
          worker.off('message', onMessage);
          reject(e);
        };
        worker.on('message', onMessage);
        worker.once('error', onError);
        worker.postMessage({ id, plan: p, policy });
      });
    },
    async dispose() {
      await worker.terminate();
    },
  };
}
