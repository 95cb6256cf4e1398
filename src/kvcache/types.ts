/**
 * Public types of the paged KV cache (docs/semantics.md, "KV cache (paged)"): a pool of fixed-size blocks of
 * key/value rows kept inside an engine, a block table that maps each sequence's positions to blocks, and the
 * options of the calls that write it and attend over it.
 */
import type { AttentionOptions, DType, DeviceTensor, InputTensor, TensorInput } from '../types.js';

/** `engine.createKvCache`'s options. */
export interface KvCacheOptions {
  /** Blocks in the pool: an integer >= 1. */
  numBlocks: number;
  /** Key rows per block: any integer >= 1 (a power of two is not required). */
  blockSize: number;
  /** Key/value heads of every row (q's heads must be a multiple of it). */
  numKvHeads: number;
  /** Elements of a key row per head, 1 to 256. */
  headDim: number;
  /** Elements of a value row per head, 1 to 256. Default `headDim`. */
  headDimV?: number;
  /** Default 'float32'. Every q, kNew and vNew of a call on this cache has this dtype. */
  dtype?: DType;
}

/**
 * A pool of `numBlocks` blocks of `blockSize` key rows (and as many value rows), resident in the engine that
 * made it (WebAssembly memory on the wasm engine, GPU memory on the cuda engine). Only that engine's calls
 * accept it. The caller keeps the sequences' lengths and block tables (`KvBlocks` does it for you).
 */
export interface KvCache {
  readonly numBlocks: number;
  readonly blockSize: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly headDimV: number;
  readonly dtype: DType;
  /**
   * The keys, `[numBlocks, blockSize, numKvHeads, headDim]`: a resident (wasm) or device (cuda) tensor of the
   * engine, which `engine.download(cache.k)` reads. It belongs to the cache: dispose the cache, not it.
   */
  readonly k: DeviceTensor;
  /** The values, `[numBlocks, blockSize, numKvHeads, headDimV]`, as `k`. */
  readonly v: DeviceTensor;
  /** True once `dispose()` ran (or the engine was disposed); every call then refuses the cache. */
  readonly disposed: boolean;
  /** Frees the pool now; a finalizer frees a forgotten one. Safe to call twice. */
  dispose(): void;
}

/**
 * Where a batch of sequences lives in the cache, shared by `writeKvCache` and `attentionWithKvCache`.
 * Sequence `b` (of `batch`) holds `c = cacheSeqlens[b]` rows before the call and gets `n` new ones;
 * key position `p` of it lives in block `blockTable[b * maxBlocksPerSeq + floor(p / blockSize)]`, row
 * `p % blockSize`, with `maxBlocksPerSeq = blockTable.length / batch`.
 */
export interface KvCacheWriteOptions {
  /** `[batch]`, each >= 0: the rows each sequence holds before this call. Read, never written. */
  cacheSeqlens: Int32Array;
  /**
   * `[batch * maxBlocksPerSeq]` block ids, row-major. Every block a sequence holds after the call
   * (positions `0 .. c + n - 1`) must be in `[0, numBlocks)`; entries past it are never read (-1 is fine).
   * Sequences may share blocks they only read (a common prefix); no two new rows may land on one (block, row).
   */
  blockTable: Int32Array;
  /** `[batch + 1]` prefix sums of the new rows per sequence: sequence b's are rows `cuSeqlensNew[b] ..` of kNew/vNew. */
  cuSeqlensNew: Int32Array;
}

/**
 * `engine.attentionWithKvCache`'s options: every option of the attention function (causal, window, softcap,
 * ...), aligned bottom-right against `Lk = c + n` keys, plus where the sequences live and their new rows.
 * `batch` is `cuSeqlensQ.length - 1`.
 */
export interface KvCacheCallOptions extends AttentionOptions {
  /** `[batch + 1]` prefix sums of the query rows per sequence. */
  cuSeqlensQ: Int32Array;
  /** `[batch]` rows already in the cache per sequence (`c`). Read, never written: the caller keeps the lengths. */
  cacheSeqlens: Int32Array;
  /** As in `KvCacheWriteOptions`. */
  blockTable: Int32Array;
  /** `[totalNew, numKvHeads, headDim]` keys to write at positions `c .. c + n - 1` first. With `vNew`, or neither. */
  kNew?: InputTensor;
  /** `[totalNew, numKvHeads, headDimV]` values, with `kNew`. */
  vNew?: InputTensor;
  /** `[batch + 1]` prefix sums of the new rows per sequence. Default `cuSeqlensQ` (one new row per query). */
  cuSeqlensNew?: Int32Array;
}

/**
 * A cache's contents on the host, for `referenceAttentionWithKvCache`: `k` `[numBlocks, blockSize, numKvHeads,
 * headDim]` and `v` `[numBlocks, blockSize, numKvHeads, headDimV]`, e.g. `engine.download(cache.k)`.
 */
export interface KvCacheContents {
  readonly k: TensorInput;
  readonly v: TensorInput;
}
