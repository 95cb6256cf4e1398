// The spy engine of the KV cache validation tests: a backend whose KV cache methods count what reaches them,
// wrapped in the façade (engineFromBackend), and a valid call to break one rule at a time.
import type { Backend } from '../src/backend.js';
import { engineFromBackend } from '../src/engine.js';
import type { KvCacheSpec, KvProblem, KvWrite } from '../src/kvcache/problem.js';
import type { KvCache, KvCacheCallOptions, KvCacheOptions, KvCacheWriteOptions } from '../src/kvcache/types.js';
import type { AnyTensor, DeviceTensor, Tensor } from '../src/types.js';

/** What reached the spy engine: counts, and the last problems it was given. */
export const reached = { create: 0, write: 0, attend: 0 };
export const seen: { write: KvWrite<AnyTensor> | null; call: KvProblem<AnyTensor> | null } = {
  write: null,
  call: null,
};

export const dev = (shape: number[], dtype: Tensor['dtype'], location: 'cuda' | 'wasm' = 'wasm'): DeviceTensor => ({
  shape,
  dtype,
  location,
  dispose() {},
});

export function spyBackend(): Backend {
  return {
    name: 'wasm',
    threads: 1,
    info: {},
    unsupported: () => null,
    run: async () => {
      throw new Error('not this path');
    },
    createKvCache: async (s: KvCacheSpec): Promise<KvCache> => {
      reached.create++;
      return {
        ...s,
        k: dev([s.numBlocks, s.blockSize, s.numKvHeads, s.headDim], s.dtype),
        v: dev([s.numBlocks, s.blockSize, s.numKvHeads, s.headDimV], s.dtype),
        disposed: false,
        dispose() {
          (this as { disposed: boolean }).disposed = true;
        },
      };
    },
    writeKvCache: async (p) => {
      reached.write++;
      seen.write = p;
    },
    attentionWithKvCache: async (p) => {
      reached.attend++;
      seen.call = p;
      return {
        out: { data: new Float32Array(p.outShape.reduce((a, b) => a * b, 1)), shape: p.outShape, dtype: 'float32' },
        lse: null,
      };
    },
    dispose: async () => {},
  };
}

export const engine = engineFromBackend(spyBackend());
export const other = engineFromBackend(spyBackend());
export const bare = engineFromBackend({
  ...spyBackend(),
  createKvCache: undefined,
  writeKvCache: undefined,
  attentionWithKvCache: undefined,
});
/** Made by makeCaches (call it in beforeAll): caches of `engine`, one of `other`, one disposed, a float16 one with headDimV 4. */
export const caches = {} as { cache: KvCache; foreign: KvCache; disposed: KvCache; half: KvCache };
export const spec: KvCacheOptions = { numBlocks: 8, blockSize: 4, numKvHeads: 2, headDim: 8 };
export async function makeCaches(): Promise<void> {
  caches.cache = await engine.createKvCache(spec);
  caches.foreign = await other.createKvCache(spec);
  caches.disposed = await engine.createKvCache(spec);
  caches.disposed.dispose();
  caches.half = await engine.createKvCache({ ...spec, dtype: 'float16', headDimV: 4 });
}

export const T = (shape: number[], dtype: Tensor['dtype'] = 'float32'): Tensor => {
  const n = shape.reduce((a, b) => a * b, 1);
  return { data: dtype === 'float32' ? new Float32Array(n).fill(0.5) : new Uint16Array(n).fill(0x3800), shape, dtype };
};
// Two sequences: c = 5 and 2, n = 1 and 2 (Lk = 6 and 4), 3 table entries each (blocks 0 and 1; block 2).
export const q = T([3, 4, 8]),
  kNew = T([3, 2, 8]),
  vNew = T([3, 2, 8]);
export const base = (): KvCacheCallOptions => ({
  cuSeqlensQ: Int32Array.of(0, 1, 3),
  cacheSeqlens: Int32Array.of(5, 2),
  blockTable: Int32Array.of(0, 1, -1, 2, -1, -1),
  kNew,
  vNew,
});
export const writeBase = (): KvCacheWriteOptions => ({
  cacheSeqlens: Int32Array.of(5, 2),
  blockTable: Int32Array.of(0, 1, -1, 2, -1, -1),
  cuSeqlensNew: Int32Array.of(0, 1, 3),
});
export const call =
  (o: Partial<KvCacheCallOptions> | null = {}, qq: unknown = q, c: () => unknown = () => caches.cache) =>
  () =>
    engine.attentionWithKvCache(
      qq as Tensor,
      c() as KvCache,
      (o === null ? null : { ...base(), ...o }) as KvCacheCallOptions,
    );
export const without = (key: keyof KvCacheCallOptions, o: Partial<KvCacheCallOptions> = {}) => {
  const x = { ...base(), ...o } as Record<string, unknown>;
  delete x[key];
  return () => engine.attentionWithKvCache(q, caches.cache, x as unknown as KvCacheCallOptions);
};
export const write =
  (
    o: Partial<KvCacheWriteOptions> | null = {},
    kk: unknown = kNew,
    vv: unknown = vNew,
    c: () => unknown = () => caches.cache,
  ) =>
  () =>
    engine.writeKvCache(
      c() as KvCache,
      kk as Tensor,
      vv as Tensor,
      (o === null ? null : { ...writeBase(), ...o }) as KvCacheWriteOptions,
    );
export const create = (o: unknown) => () => engine.createKvCache(o as KvCacheOptions);
