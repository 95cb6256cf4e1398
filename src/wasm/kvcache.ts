/**
 * The wasm engine's paged KV cache (docs/semantics.md, "The KV cache (paged)"): a pool of blocks kept as two
 * resident regions of the engine's WebAssembly memory (k and v, `[numBlocks, blockSize, numKvHeads,
 * headDim(V)]`, shared by the workers), the write of new rows into it, and attention whose kernel reads K and
 * V through the block table (P_PAGED, assembly/rows.ts), with no gather into a contiguous copy.
 *
 * Everything runs in the engine's call queue (core.ts), so a write never races a call in flight. A call
 * writes its rows on the calling thread after every check that can refuse it (the façade's, the resident
 * inputs', the 4 GiB layout), and before the kernel reads anything: a rejected call leaves the cache as it was.
 */
import { KvCacheDims } from '../kvcache/dims.js';
import type { BackendOutput } from '../backend.js';
import { typeErr, words } from '../errors.js';
import { MAX_ROWS } from '../kvcache/layout.js';
import type { KvCacheSpec, KvProblem, KvWrite } from '../kvcache/problem.js';
import type { KvCache } from '../kvcache/types.js';
import type { Problem } from '../problem.js';
import type { AnyTensor, DType, Tensor } from '../types.js';
import type { Block, Paging, Regions } from './plan.js';
import { disposedError } from './pool.js';
import { type TensorOwner, WasmTensor } from './tensor.js';

/** What the cache needs of the wasm backend (core.ts). */
export interface KvHost {
  /** The backend: what the cache's tensors belong to. */
  readonly owner: TensorOwner;
  readonly memory: WebAssembly.Memory;
  readonly regions: Regions;
  readonly maxBytes: number;
  disposed(): boolean;
  /** No call or upload in the queue (one enqueued now starts at once, before the caller gets control back). */
  idle(): boolean;
  enqueue<R>(f: () => R | Promise<R>): Promise<R>;
  reserve(end: number): void;
  unsupported(p: Problem<AnyTensor>): string | null;
  /** One call, in the queue; `write` is called after its last check and before the kernel runs. */
  run(p: Problem<AnyTensor>, write: () => void): Promise<BackendOutput>;
}

/**
 * A paged call as the driver runs it: the Problem of attentionVarlen on each sequence's keys laid end to end,
 * except that `k` and `v` are the cache's tensors and the keys are found through `paging`.
 */
type PagedProblem = Problem<AnyTensor> & { readonly paging: Paging };

/** A paged call's paging, or null for any other call. */
export const pagingOf = (p: Problem<AnyTensor>): Paging | null => (p as Partial<PagedProblem>).paging ?? null;

/** A cache's two regions. Holds nothing of the cache object, so the finalizer can free a forgotten one. */
interface Pool {
  readonly k: Block;
  readonly v: Block;
  disposed: boolean;
}

const bytesOf = (dtype: DType) => (dtype === 'float32' ? 4 : 2);
const gib = (bytes: number) => `${(bytes / 2 ** 30).toFixed(2)} GiB`;

/** A KV cache of one wasm engine. Its `k` and `v` belong to it: their dispose() does nothing, the cache's frees them. */
class WasmKvCache extends KvCacheDims implements KvCache {
  readonly k: WasmTensor;
  readonly v: WasmTensor;
  readonly #pool: Pool;
  readonly #caches: KvCaches;

  constructor(spec: KvCacheSpec, pool: Pool, caches: KvCaches, owner: TensorOwner) {
    super(spec);
    const rows = [spec.numBlocks, spec.blockSize, spec.numKvHeads];
    this.k = new WasmTensor([...rows, spec.headDim], spec.dtype, owner, pool.k, this);
    this.v = new WasmTensor([...rows, spec.headDimV], spec.dtype, owner, pool.v, this);
    this.#pool = pool;
    this.#caches = caches;
  }

  get disposed(): boolean {
    return this.#pool.disposed;
  }

  dispose(): void {
    this.#caches.free(this.#pool);
  }
}

/** The caches of one wasm engine. */
export class KvCaches {
  readonly #live = new Set<Pool>();
  readonly #finalizer = new FinalizationRegistry<Pool>((pool) => this.free(pool));

  constructor(private readonly host: KvHost) {}

  /** Two zeroed regions (k, then v) in the engine's memory, taken in the queue like an upload's. */
  create(spec: KvCacheSpec): Promise<KvCache> {
    const { host } = this;
    const rows = spec.numBlocks * spec.blockSize * spec.numKvHeads,
      es = bytesOf(spec.dtype);
    const kBytes = rows * spec.headDim * es,
      vBytes = rows * spec.headDimV * es;
    return host.enqueue(() => {
      if (host.disposed()) throw disposedError();
      const refuse = () =>
        new RangeError(
          `Expected a KV cache that fits the wasm engine's 4 GiB memory (beside its resident tensors) for options.numBlocks but received one of ${gib(kBytes + vBytes)} (k and v); use fewer or smaller blocks`,
        );
      if (kBytes + vBytes > host.maxBytes || host.regions.fit(kBytes) + kBytes > host.maxBytes) throw refuse();
      const k = host.regions.take(kBytes);
      if (host.regions.fit(vBytes) + vBytes > host.maxBytes) {
        host.regions.free(k);
        throw refuse();
      }
      const v = host.regions.take(vBytes);
      try {
        host.reserve(Math.max(k.end, v.end));
      } catch (e) {
        host.regions.free(k);
        host.regions.free(v);
        throw e;
      }
      // a fresh cache reads as zeros (its rows are unspecified until written, but not stale call data)
      const mem = new Uint8Array(host.memory.buffer);
      mem.fill(0, k.start, k.end);
      mem.fill(0, v.start, v.end);
      const pool: Pool = { k, v, disposed: false };
      const cache = new WasmKvCache(spec, pool, this, host.owner);
      this.#live.add(pool);
      this.#finalizer.register(cache, pool, pool);
      return cache;
    });
  }

  /** Frees a cache's regions now (its dispose(), the finalizer, the engine's dispose). Safe twice. */
  free(pool: Pool): void {
    if (pool.disposed) return;
    pool.disposed = true;
    this.#live.delete(pool);
    this.#finalizer.unregister(pool);
    this.host.regions.free(pool.k);
    this.host.regions.free(pool.v);
  }

  /** The engine is disposed: every cache with it. */
  disposeAll(): void {
    for (const pool of [...this.#live]) this.free(pool);
  }

  /** `writeKvCache`: the new rows, in the queue. */
  write(p: KvWrite<AnyTensor>): Promise<void> {
    try {
      this.checkResident(p, 'kNew', 'vNew');
    } catch (e) {
      return Promise.reject(e);
    }
    const call = this.host.idle() ? p : snapshot(p);
    return this.host.enqueue(() => {
      if (this.host.disposed()) throw disposedError();
      this.checkLive(call, 'kNew', 'vNew');
      this.writeRows(call, 'kNew', 'vNew');
    });
  }

  /** `attentionWithKvCache`: the write, then the kernel over K and V read through the block table. */
  attend(p: KvProblem<AnyTensor>): Promise<BackendOutput> {
    let pp: PagedProblem;
    try {
      this.checkResident(p, 'options.kNew', 'options.vNew');
      if (p.q.location === 'wasm') WasmTensor.blockOf(p.q, 'q', this.host.owner);
      pp = pagedProblem(p);
      const why = this.host.unsupported(pp);
      if (why !== null) throw new RangeError(why);
    } catch (e) {
      return Promise.reject(e);
    }
    if (!this.host.idle()) {
      const s = snapshot(p);
      pp = { ...pp, q: s.q, kNew: s.kNew, vNew: s.vNew } as PagedProblem;
    }
    const call = pp as unknown as KvProblem<AnyTensor>;
    return this.host.enqueue(() => {
      if (this.host.disposed()) throw disposedError();
      this.checkLive(call, 'options.kNew', 'options.vNew');
      return this.host.run(pp, () => this.writeRows(call, 'options.kNew', 'options.vNew'));
    });
  }

  /** Resident kNew / vNew must be this engine's and live (TypeError), checked before the call is queued. */
  private checkResident(p: KvWrite<AnyTensor>, kName: string, vName: string): void {
    if (p.kNew?.location === 'wasm') WasmTensor.blockOf(p.kNew, kName, this.host.owner);
    if (p.vNew?.location === 'wasm') WasmTensor.blockOf(p.vNew, vName, this.host.owner);
  }

  /** In the queue: the cache and the resident inputs may have been disposed since the call was made. */
  private checkLive(p: KvWrite<AnyTensor>, kName: string, vName: string): void {
    if (p.cache.disposed) throw typeErr('a KV cache that is not disposed', 'cache', words('a disposed cache'));
    this.checkResident(p, kName, vName);
  }

  /**
   * Copies each sequence's new rows into their (block, row) of the cache: position `c + r` of sequence b is
   * row `(c + r) % blockSize` of block `blockTable[b * maxBlocksPerSeq + floor((c + r) / blockSize)]`. Rows
   * that share a block are adjacent on both sides, so each run of them is one copy.
   */
  private writeRows(p: KvWrite<AnyTensor>, kName: string, vName: string): void {
    if (!p.kNew || !p.vNew || p.totalNew === 0) return;
    const owner = this.host.owner;
    const es = bytesOf(p.dtype);
    const rowK = p.numKvHeads * p.headDim * es,
      rowV = p.numKvHeads * p.headDimV * es;
    const kAt = WasmTensor.blockOf(p.cache.k, 'cache.k', owner).start,
      vAt = WasmTensor.blockOf(p.cache.v, 'cache.v', owner).start;
    const mem = new Uint8Array(this.host.memory.buffer);
    const source = (t: AnyTensor, name: string): number | Uint8Array => {
      if (t.location === 'wasm') return WasmTensor.blockOf(t, name, owner).start;
      const d = (t as Tensor).data;
      return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
    };
    const ks = source(p.kNew, kName),
      vs = source(p.vNew, vName);
    const copy = (dst: number, src: number | Uint8Array, off: number, len: number) => {
      if (typeof src === 'number') mem.copyWithin(dst, src + off, src + off + len);
      else mem.set(src.subarray(off, off + len), dst);
    };
    const { blockSize: bs, maxBlocksPerSeq: m } = p;
    for (let b = 0; b < p.batch; b++) {
      const c = p.cacheSeqlens[b]!,
        r0 = p.cuSeqlensNew[b]!,
        n = p.cuSeqlensNew[b + 1]! - r0;
      for (let r = 0; r < n; ) {
        const pos = c + r,
          off = pos % bs;
        const run = Math.min(bs - off, n - r);
        const row = p.blockTable[b * m + Math.floor(pos / bs)]! * bs + off;
        copy(kAt + row * rowK, ks, (r0 + r) * rowK, run * rowK);
        copy(vAt + row * rowV, vs, (r0 + r) * rowV, run * rowV);
        r += run;
      }
    }
  }
}

/** The call with copies of its host inputs' data (for a call that waits in the queue: the caller may reuse theirs). */
function snapshot<P extends KvWrite<AnyTensor> & { q?: AnyTensor }>(p: P): P {
  const copy = <T extends AnyTensor | null | undefined>(t: T): T =>
    t && t.location !== 'wasm' ? ({ ...(t as Tensor), data: (t as Tensor).data.slice() } as T) : t;
  return { ...p, q: copy(p.q), kNew: copy(p.kNew), vNew: copy(p.vNew) };
}

/**
 * The driver's Problem of a KV cache call: the KvProblem's attention fields with k and v the cache's tensors,
 * cuSeqlensK the keys' prefix sums (as if laid end to end; capped at 2^31 - 1, and never read: the items take
 * each sequence's length from `paging.seqlensK` and its key offset from its block table row).
 */
function pagedProblem(p: KvProblem<AnyTensor>): PagedProblem {
  const cuSeqlensK = new Int32Array(p.batch + 1);
  let totalK = 0;
  for (let b = 0; b < p.batch; b++) {
    totalK += p.seqlensK[b]!;
    cuSeqlensK[b + 1] = Math.min(totalK, MAX_ROWS);
  }
  const paging: Paging = {
    seqlensK: p.seqlensK,
    blockTable: p.blockTable,
    blockSize: p.blockSize,
    maxBlocksPerSeq: p.maxBlocksPerSeq,
  };
  return { ...p, k: p.cache.k, v: p.cache.v, cuSeqlensK, totalK, paging };
}
