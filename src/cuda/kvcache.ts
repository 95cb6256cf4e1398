/**
 * The cuda engine's paged KV cache (docs/semantics.md, "The KV cache (paged)"): the pool is two device
 * buffers of this engine (`[numBlocks, blockSize, numKvHeads, headDim(V)]`, zeroed when made), the write of
 * new rows is a kernel on the engine's stream (cuda/aux_kernels.h launchPrologue), and attention reads K and V
 * through the block table inside the attention kernel (cuda/params.h keyRow), with no gather into a
 * contiguous copy for float16/bfloat16 caches whose head dims are multiples of 8 (others are gathered and
 * converted on the GPU first, as float32 inputs are converted for every call).
 *
 * Everything is stream-ordered: a write is enqueued before the attention that reads it, so every write of
 * a call happens before any of its reads, and a later call sees it. Every check that can refuse a call runs
 * before the write is enqueued: a rejected call leaves the cache as it was.
 */
import { KvCacheDims } from '../kvcache/dims.js';
import type { KvCacheSpec, KvProblem, KvWrite } from '../kvcache/problem.js';
import type { KvCache } from '../kvcache/types.js';
import type { Problem } from '../problem.js';
import type { AnyTensor, Tensor } from '../types.js';
import type { NativeAddon, NativeContext, NativeOperand, NativePaging } from './addon.js';
import { packWrite } from './pack.js';
import { CudaTensor, bytesOf } from './tensor.js';

/** A KV cache of one cuda engine. Its `k` and `v` belong to it: their dispose() does nothing, the cache's frees them. */
class CudaKvCache extends KvCacheDims implements KvCache {
  readonly k: CudaTensor;
  readonly v: CudaTensor;
  #disposed = false;

  constructor(spec: KvCacheSpec, k: CudaTensor, v: CudaTensor) {
    super(spec);
    this.k = k;
    this.v = v;
  }

  get disposed(): boolean {
    return this.#disposed;
  }

  /** The buffers go back in the engine's stream order (after the calls that read them); a finalizer frees forgotten ones. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const t of [this.k, this.v]) CudaTensor.release(t);
  }
}

/** Rows of the call's keys laid end to end: the cuda kernel's 32-bit key offsets must hold them. */
const MAX_TOTAL_KEYS = 2 ** 31 - 1;

/** The caches of one cuda engine. */
export class CudaKvCaches {
  readonly #live = new Set<WeakRef<CudaKvCache>>();

  constructor(
    private readonly owner: object,
    private readonly addon: NativeAddon,
    private readonly ctx: NativeContext,
  ) {}

  async create(spec: KvCacheSpec): Promise<KvCache> {
    const rows = [spec.numBlocks, spec.blockSize, spec.numKvHeads];
    const es = bytesOf(spec.dtype);
    const n = spec.numBlocks * spec.blockSize * spec.numKvHeads;
    const [k, v] = await Promise.all([
      this.addon.allocDevice(this.ctx, n * spec.headDim * es, true),
      this.addon.allocDevice(this.ctx, n * spec.headDimV * es, true),
    ]);
    const cache = new CudaKvCache(
      spec,
      new CudaTensor([...rows, spec.headDim], spec.dtype, k, this.owner, true),
      new CudaTensor([...rows, spec.headDimV], spec.dtype, v, this.owner, true),
    );
    for (const r of this.#live) {
      const c = r.deref();
      if (!c || c.disposed) this.#live.delete(r); // collected or disposed: nothing left for disposeAll
    }
    this.#live.add(new WeakRef(cache));
    return cache;
  }

  /** The engine is disposed: every cache with it. */
  disposeAll(): void {
    for (const r of this.#live) r.deref()?.dispose();
    this.#live.clear();
  }

  /** The write's operands, checked (device kNew/vNew are this engine's and live): call before any work. */
  checkWrite(p: KvWrite<AnyTensor>, kName: string, vName: string): [NativeOperand, NativeOperand] | null {
    if (!p.kNew || !p.vNew || p.totalNew === 0) return null;
    const op = (t: AnyTensor, name: string): NativeOperand =>
      t.location === 'cuda' ? CudaTensor.bufferOf(t, name, this.owner) : (t as Tensor).data;
    return [op(p.kNew, kName), op(p.vNew, vName)];
  }

  /** Enqueues the write of checked operands (checkWrite). */
  write(p: KvWrite<AnyTensor>, ops: [NativeOperand, NativeOperand] | null): void {
    if (!ops) return;
    this.addon.kvWrite(
      this.ctx,
      ...packWrite({
        dtype: p.dtype,
        numKvHeads: p.numKvHeads,
        headDim: p.headDim,
        headDimV: p.headDimV,
        totalNew: p.totalNew,
        cuSeqlensNew: p.cuSeqlensNew,
        cacheSeqlens: p.cacheSeqlens,
        ...paging(p),
      }),
      CudaTensor.bufferOf(p.cache.k, 'cache.k', this.owner),
      CudaTensor.bufferOf(p.cache.v, 'cache.v', this.owner),
      ops[0],
      ops[1],
    );
  }

  /**
   * The attention Problem of a KV cache call: k and v the cache's tensors, cuSeqlensK the keys' prefix sums
   * (each sequence's keys laid end to end), and where the keys live for the addon. A RangeError when the
   * keys laid end to end outgrow the kernel's 32-bit offsets.
   */
  problemOf(p: KvProblem<AnyTensor>): { problem: Problem<AnyTensor>; paged: NativePaging } {
    const cuSeqlensK = new Int32Array(p.batch + 1);
    let totalK = 0;
    for (let b = 0; b < p.batch; b++) {
      totalK += p.seqlensK[b]!;
      if (totalK > MAX_TOTAL_KEYS)
        throw new RangeError(
          `Expected at most 2^31 - 1 keys over the batch (cacheSeqlens plus new rows, summed) for a cuda KV cache call but received more; split the batch`,
        );
      cuSeqlensK[b + 1] = totalK;
    }
    // Field by field: a spread of the KvProblem's 36 keys cost 8-9 us per call (a decode step's budget is ~20).
    const problem: Problem<AnyTensor> = {
      dtype: p.dtype,
      q: p.q,
      k: p.cache.k,
      v: p.cache.v,
      cuSeqlensQ: p.cuSeqlensQ,
      cuSeqlensK,
      batch: p.batch,
      totalQ: p.totalQ,
      totalK,
      maxSeqlenQ: p.maxSeqlenQ,
      maxSeqlenK: p.maxSeqlenK,
      numHeads: p.numHeads,
      numKvHeads: p.numKvHeads,
      headDim: p.headDim,
      headDimV: p.headDimV,
      windowLeft: p.windowLeft,
      windowRight: p.windowRight,
      softmaxScale: p.softmaxScale,
      softcap: p.softcap,
      alibiSlopes: p.alibiSlopes,
      sinks: p.sinks,
      returnLse: p.returnLse,
      precision: p.precision,
      outShape: p.outShape,
      lseShape: p.lseShape,
      fixedSeqlenQ: p.fixedSeqlenQ,
      outInto: p.outInto,
      lseInto: p.lseInto,
    };
    return { problem, paged: paging(p) };
  }
}

function paging(p: KvWrite<AnyTensor>): NativePaging {
  return {
    blockTable: p.blockTable,
    maxBlocks: p.maxBlocksPerSeq,
    blockSize: p.blockSize,
    poolRows: p.numBlocks * p.blockSize,
  };
}
