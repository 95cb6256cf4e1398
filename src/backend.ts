/** The internal contract between the façade and an engine. Users never see it. */
import type { KvCacheSpec, KvProblem, KvWrite } from './kvcache/problem.js';
import type { KvCache } from './kvcache/types.js';
import type { PartsLayout } from './merge.js';
import type { Problem } from './problem.js';
import type { AnyTensor, BackendName, DType, DeviceTensor, Tensor } from './types.js';

export interface BackendOutput {
  /** In the problem's dtype, shaped `p.outShape`. */
  out: AnyTensor;
  /** float32, shaped `p.lseShape`; null unless `p.returnLse`. */
  lse: AnyTensor | null;
}

export interface Backend {
  readonly name: BackendName;
  readonly threads: number;
  readonly info: Readonly<Record<string, string | number | boolean>>;
  /**
   * Why this engine cannot run a validated problem (null when it can). The façade throws it as a
   * RangeError before any work; the conformance suite uses the same predicate to skip a case.
   */
  unsupported(p: Problem<AnyTensor>): string | null;
  /**
   * Runs a validated problem. With `p.outInto` / `p.lseInto` set, writes the results into them and returns
   * them: for host q, host tensors whose `data` (the caller's arrays) it writes only after reading every
   * input, which may share memory with them.
   */
  run(p: Problem<AnyTensor>): Promise<BackendOutput>;
  /**
   * Engines that keep resident tensors (location 'wasm') check a problem's: made by this engine and
   * not disposed, else a TypeError. The façade refuses resident tensors for engines without it.
   */
  checkInputs?(p: Problem<AnyTensor>): void;
  upload?(t: Tensor): Promise<DeviceTensor>;
  /**
   * `length` zeroed elements for `engine.hostTensor` (the façade checked the size): on cuda, page-locked
   * memory the GPU copies by DMA without staging. An input in one must not be written until the call reading
   * it has settled. Without it the façade makes a plain Float32Array / Uint16Array.
   */
  hostArray?(length: number, dtype: DType): Float32Array | Uint16Array;
  /** Settles when every call made so far has (engines whose calls all settle before resolving need none). */
  synchronize?(): Promise<void>;
  download?(t: DeviceTensor): Promise<Tensor>;
  /**
   * The paged KV cache (src/kvcache/): an engine that keeps one has all three; the façade refuses the calls of
   * an engine without them. `createKvCache` allocates a pool for validated options and returns it: `k` and
   * `v` are this engine's resident/device tensors (`download` reads them, the cache's `dispose()` frees them
   * and sets `disposed`, a finalizer frees a forgotten one, the engine's dispose frees them all).
   */
  createKvCache?(spec: KvCacheSpec): Promise<KvCache>;
  /**
   * Writes `p.kNew`/`p.vNew` into `p.cache`, which the façade checked this engine made and is not disposed;
   * every layout rule is checked (src/kvcache/problem.ts). The engine still checks that device or resident
   * tensors among kNew/vNew are its own and live, and its own limits (RangeError), before writing anything:
   * a rejected call leaves the cache as it was.
   */
  writeKvCache?(p: KvWrite<AnyTensor>): Promise<void>;
  /**
   * The write of `p` (as `writeKvCache`; every write happens before any read), then attention of the queries
   * over keys read through the block table: `out` shaped `p.outShape`, `lse` `p.lseShape` with `p.returnLse`,
   * into `p.outInto`/`p.lseInto` when set. The same checks as `writeKvCache` (q, outInto, lseInto too) come first.
   */
  attentionWithKvCache?(p: KvProblem<AnyTensor>): Promise<BackendOutput>;
  /** Merges device parts of this engine (the façade read them and checked their common layout). */
  mergeAttention?(
    parts: readonly { out: DeviceTensor; lse: DeviceTensor }[],
    layout: PartsLayout,
  ): Promise<BackendOutput>;
  dispose(): Promise<void>;
}
