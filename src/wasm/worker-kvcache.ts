/**
 * The one-worker engine's KV caches, page side (worker-engine.ts). A cache's pool lives in the worker's
 * WebAssembly memory, made there by the same core.ts / kvcache.ts code as in every other configuration;
 * the page holds a handle: the `KvCache` the façade expects (its dims, `k` and `v`, `disposed`, `dispose()`),
 * known to the worker by a number. `k` and `v` are handles too (location 'wasm'): `engine.download` reads
 * them from the worker; no call of this engine takes them as inputs.
 *
 * A handle's `dispose()`, or its finalizer, posts the worker a 'kvFree', which the worker runs in order with
 * the calls posted before it; the engine's dispose marks every handle disposed (the worker and its memory go).
 */
import { KvCacheDims } from '../kvcache/dims.js';
import type { KvCacheSpec } from '../kvcache/problem.js';
import type { KvCache } from '../kvcache/types.js';
import type { AnyTensor, DType, DeviceTensor } from '../types.js';

/** A pool as the page knows it: its number in the worker, and whether it was freed. Holds nothing of the handle. */
interface PoolState {
  readonly id: number;
  disposed: boolean;
}

/** `cache.k` or `cache.v` of a one-worker engine's cache. It belongs to the cache: its dispose() does nothing. */
class WorkerTensor implements DeviceTensor {
  readonly location = 'wasm' as const;
  readonly shape: readonly number[];
  readonly #caches: WorkerKvCaches;
  readonly #state: PoolState;
  readonly #part: 'k' | 'v';
  /** Keeps the cache reachable while its tensor is, so its finalizer cannot free a pool still read. */
  readonly #cache: WorkerKvCache;

  constructor(
    shape: number[],
    readonly dtype: DType,
    caches: WorkerKvCaches,
    state: PoolState,
    part: 'k' | 'v',
    cache: WorkerKvCache,
  ) {
    this.shape = Object.freeze(shape);
    this.#caches = caches;
    this.#state = state;
    this.#part = part;
    this.#cache = cache;
  }

  /** The pool and part of a live tensor of `caches`' caches; a TypeError naming the fix otherwise. */
  static of(t: AnyTensor, name: string, caches: WorkerKvCaches): { id: number; part: 'k' | 'v' } {
    if (!(t instanceof WorkerTensor) || t.#caches !== caches) throw foreign(t, name);
    if (t.#cache.disposed)
      throw new TypeError(
        `Expected a live resident tensor for ${name} but received one that was disposed (its KV cache was disposed)`,
      );
    return { id: t.#state.id, part: t.#part };
  }

  /** Whether `t` is a tensor of one of `caches`' caches (live or not). */
  static isOf(t: unknown, caches: WorkerKvCaches): t is WorkerTensor {
    return t instanceof WorkerTensor && t.#caches === caches;
  }

  dispose(): void {}
}

/** The TypeError for a resident tensor that is not one of this engine's cache tensors. */
function foreign(t: AnyTensor, name: string): TypeError {
  if (t.location === 'cuda')
    return new TypeError(
      `Expected a host or wasm-resident tensor for ${name} but received a cuda tensor; download() it first`,
    );
  return new TypeError(
    `Expected a tensor of this wasm engine's KV cache for ${name} but received a tensor resident in another wasm engine (or a plain object with location 'wasm'); download() it from that engine`,
  );
}

/** A KV cache of a one-worker engine: the page's handle of a pool in the worker. */
class WorkerKvCache extends KvCacheDims implements KvCache {
  readonly k: WorkerTensor;
  readonly v: WorkerTensor;
  readonly #state: PoolState;
  readonly #caches: WorkerKvCaches;

  constructor(spec: KvCacheSpec, state: PoolState, caches: WorkerKvCaches) {
    super(spec);
    const rows = [spec.numBlocks, spec.blockSize, spec.numKvHeads];
    this.k = new WorkerTensor([...rows, spec.headDim], spec.dtype, caches, state, 'k', this);
    this.v = new WorkerTensor([...rows, spec.headDimV], spec.dtype, caches, state, 'v', this);
    this.#state = state;
    this.#caches = caches;
  }

  get disposed(): boolean {
    return this.#state.disposed;
  }

  dispose(): void {
    this.#caches.free(this.#state);
  }

  /** The pool number of a live cache of `caches` (the façade checked both; checked again, as the engine relies on it). */
  static idOf(c: KvCache, caches: WorkerKvCaches): number {
    if (!(c instanceof WorkerKvCache) || c.#caches !== caches)
      throw new TypeError(
        "Expected a KV cache made by this wasm engine's createKvCache for cache but received an object it did not make (another engine's cache?)",
      );
    if (c.#state.disposed)
      throw new TypeError('Expected a KV cache that is not disposed for cache but received a disposed cache');
    return c.#state.id;
  }
}

/** The caches of one one-worker engine: numbering, handles, freeing. */
export class WorkerKvCaches {
  #next = 1;
  readonly #live = new Set<PoolState>();
  readonly #finalizer = new FinalizationRegistry<PoolState>((state) => this.free(state));

  /** `free` posts the worker its 'kvFree' (nothing once the engine is gone). */
  constructor(private readonly post: (id: number) => void) {}

  /** A number for a pool about to be made in the worker. */
  reserve(): number {
    return this.#next++;
  }

  /** The handle of pool `id`, which the worker has made. */
  made(spec: KvCacheSpec, id: number): KvCache {
    const state: PoolState = { id, disposed: false };
    const cache = new WorkerKvCache(spec, state, this);
    this.#live.add(state);
    this.#finalizer.register(cache, state, state);
    return cache;
  }

  /** Frees a pool now (its handle's dispose(), the finalizer). Safe twice. */
  free(state: PoolState): void {
    if (state.disposed) return;
    state.disposed = true;
    this.#live.delete(state);
    this.#finalizer.unregister(state);
    this.post(state.id);
  }

  /** The engine is disposed: its worker and every pool are gone, so every handle reads as disposed. */
  disposeAll(): void {
    for (const state of this.#live) {
      state.disposed = true;
      this.#finalizer.unregister(state);
    }
    this.#live.clear();
  }

  /** The worker's number of a call's cache (TypeError if it is not a live cache of this engine). */
  idOf(c: KvCache): number {
    return WorkerKvCache.idOf(c, this);
  }

  /** The pool and part (k or v) of a tensor to download (TypeError if it is not a live cache tensor of this engine). */
  tensorOf(t: AnyTensor, name: string): { id: number; part: 'k' | 'v' } {
    return WorkerTensor.of(t, name, this);
  }

  /**
   * This engine's calls read host tensors only: a resident input is refused with a TypeError (this engine's
   * cache tensors with the way to read them, any other with the way to move it).
   */
  refuseResident(t: AnyTensor | null, name: string): void {
    if (t?.location !== 'wasm') return;
    if (WorkerTensor.isOf(t, this))
      throw new TypeError(
        `Expected a host tensor for ${name} but received a KV cache's k or v: this wasm engine computes in one worker and reads its caches only in writeKvCache and attentionWithKvCache; engine.download() the tensor to pass it`,
      );
    throw foreign(t, name);
  }
}
