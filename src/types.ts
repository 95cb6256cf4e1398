/** Public types of flashattn. One definition, shared by every entry point and engine. */
import type { KvCache, KvCacheCallOptions, KvCacheOptions, KvCacheWriteOptions } from './kvcache/types.js';

export type DType = 'float32' | 'float16' | 'bfloat16';
export type BackendName = 'wasm' | 'cuda';
export type HostData = Float32Array | Uint16Array;

/** A dense row-major host tensor, as the engines return it. `Uint16Array` data holds float16 or bfloat16 bits. */
export interface Tensor {
  readonly data: HostData;
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly location?: 'cpu';
}

/**
 * The runtime's `Float16Array` (Node 24+, recent browsers), typed by its shape so that this package
 * needs no newer TypeScript lib. Its elements are float16; the engines read its bits.
 */
export interface Float16ArrayLike extends ArrayBufferView {
  readonly length: number;
  readonly BYTES_PER_ELEMENT: 2;
  readonly [Symbol.toStringTag]: 'Float16Array';
}

/**
 * A host tensor as users hold it: `Float32Array` data is float32 (`dtype` may be left out), a
 * `Float16Array` is float16, and `Uint16Array` data needs `dtype: 'float16' | 'bfloat16'`.
 */
export interface TensorLike {
  readonly data: HostData | Float16ArrayLike;
  readonly shape: readonly number[];
  readonly dtype?: DType;
  readonly location?: 'cpu';
}

/**
 * An onnxruntime-web / onnxruntime-node `Tensor` (what transformers.js hands out), read through its
 * `type`, `dims` and `data`: types 'float32' and 'float16', on the CPU (`location` 'cpu' or 'cpu-pinned').
 */
export interface OrtTensorLike {
  readonly type: string;
  readonly dims: readonly number[];
  readonly data: unknown;
  readonly location?: string;
}

/** Everything a call accepts as a host input. */
export type TensorInput = TensorLike | OrtTensorLike;

/**
 * A tensor whose data lives in an engine's memory, made by `engine.upload`: 'cuda' (GPU memory; the cuda
 * engine also returns its results so) or 'wasm' (resident in the wasm engine's WebAssembly memory, e.g. a
 * KV cache reused across calls; the wasm engine's results stay host tensors).
 */
export interface DeviceTensor {
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly location: 'cuda' | 'wasm';
  /** Frees the memory now; a finalizer frees what is forgotten. */
  dispose(): void;
}

export type AnyTensor = Tensor | DeviceTensor;

/** options.precision: what float32 inputs may be computed in. */
export type Precision = 'float32' | 'float16';

/** A call's inputs: host tensors in any accepted form, or tensors kept by the engine. */
export type InputTensor = TensorInput | DeviceTensor;

/** Results are device tensors for device `q` on the cuda engine, else host tensors. */
export type ResultTensor<Q> = Q extends DeviceTensor ? DeviceTensor : Tensor;

export interface AttentionOptions {
  /** Bottom-right aligned causal mask (right window = 0). Default false. */
  causal?: boolean;
  /** `[left, right]` widths in keys around the diagonal; -1 means unbounded. Default `[-1, -1]`. */
  window?: readonly [number, number];
  /** Default `1 / sqrt(headDim)`. */
  softmaxScale?: number;
  /** `s = softcap * tanh(s / softcap)` when > 0. Default 0 (off). */
  softcap?: number;
  /** `[numHeads]` slopes: `s -= slope_h * |d(i) - j|`. */
  alibiSlopes?: Float32Array | readonly number[];
  /**
   * `[numHeads]` learned attention sinks (gpt-oss): logits that join each row's softmax denominator
   * with no value row, in the units of the final scores (no scale, softcap or ALiBi is applied to
   * them). A row that sees no key then gets out 0 and lse = its head's sink.
   */
  sinks?: Float32Array | readonly number[];
  /** Also return the natural log-sum-exp of each row's scores. Default false. */
  returnLse?: boolean;
  /**
   * What float32 inputs are computed in. 'float32' (default): float32 accuracy on every engine. 'float16'
   * lets an engine trade it for speed: the cuda engine then converts float32 inputs to float16 and runs its
   * tensor-core kernels (values beyond +-65504 overflow); the wasm engine computes float32 either way.
   * No effect on float16 and bfloat16 inputs.
   */
  precision?: Precision;
  /**
   * A tensor to write `out` into, of the result's shape and dtype, so that a decode loop allocates nothing;
   * the result's `out` is this very object. On q's side: for host q (and wasm-resident q), a host tensor
   * `{ data, shape, dtype }` whose `data` is a Float32Array (float32) or Uint16Array (halves) of exactly the
   * result's length (`engine.hostTensor` makes one), written when the call settles, after every input was
   * read (it may share memory with q, k or v); for device q on the cuda engine, a device tensor of this engine.
   */
  out?: Tensor | DeviceTensor;
  /** Likewise for `lse` (float32, implies `returnLse`). */
  lse?: Tensor | DeviceTensor;
}

export interface VarlenOptions extends AttentionOptions {
  /** `[batch + 1]` prefix sums of the query lengths. */
  cuSeqlensQ: Int32Array;
  /** `[batch + 1]` prefix sums of the key lengths. */
  cuSeqlensK: Int32Array;
}

export interface AttentionResult<T extends AnyTensor = Tensor> {
  /** q's dtype; `[totalQ, numHeads, headDimV]` (packed) or `[batch, seqlenQ, numHeads, headDimV]` (fixed). */
  out: T;
  /** float32; `[numHeads, totalQ]` (packed) or `[batch, numHeads, seqlenQ]` (fixed). */
  lse?: T;
}

/** One build of the WebAssembly kernel: its URL, its bytes, or the module compiled from them. */
export type WasmSource = string | URL | ArrayBuffer | ArrayBufferView | WebAssembly.Module;

export interface WasmSources {
  /** build/wasm/flashattn.wasm (runs wherever WebAssembly SIMD does). */
  baseline: WasmSource;
  /** build/wasm/flashattn-relaxed.wasm, used where relaxed SIMD validates. */
  relaxed?: WasmSource;
}

export interface EngineOptions {
  /** 'auto' (default) picks cuda when the addon loads and sees a GPU, else wasm. */
  backend?: 'auto' | BackendName;
  /**
   * Worker threads for the wasm engine; defaults to the available cores. 1 runs on the calling thread
   * (in a browser: in one Web Worker). More than 1 in a browser needs a cross-origin isolated page.
   */
  threads?: number;
  /**
   * Browser entry only: where the wasm kernel comes from when the files next to the package cannot be
   * fetched (a bundled app, an edge runtime without fetch or file system). Default: fetched from
   * `../build/wasm/` relative to dist/browser.js. The Node entry reads the files from the package.
   */
  wasm?: WasmSources;
}

export interface Engine {
  readonly backend: BackendName;
  /** Why a faster engine was not chosen (set when 'auto' fell back). */
  readonly fallbackReason?: string;
  /** Threads the wasm engine computes on (1 for cuda). */
  readonly threads: number;
  /** Details for `flashattn doctor`: SIMD flavour, device name, ... */
  readonly info: Readonly<Record<string, string | number | boolean>>;
  /**
   * Results are on q's side: host tensors for host q, cuda tensors for cuda q. On the wasm engine, k and v
   * may be resident tensors (`upload`) with host q (a KV cache); its results are always host tensors.
   */
  attentionVarlen<Q extends InputTensor>(
    q: Q,
    k: InputTensor,
    v: InputTensor,
    options: VarlenOptions,
  ): Promise<AttentionResult<ResultTensor<Q>>>;
  attention<Q extends InputTensor>(
    q: Q,
    k: InputTensor,
    v: InputTensor,
    options?: AttentionOptions,
  ): Promise<AttentionResult<ResultTensor<Q>>>;
  /**
   * Whether this engine can run the call: null when it can, else the reason it would reject it with
   * (a RangeError). Options with `cuSeqlensQ` mean `attentionVarlen`, otherwise `attention`. Input
   * that breaks the contract throws the call's own TypeError/RangeError. Nothing is computed.
   */
  supports(q: InputTensor, k: InputTensor, v: InputTensor, options?: AttentionOptions | VarlenOptions): string | null;
  /**
   * Copies a host tensor into the engine: GPU memory (cuda), or the engine's WebAssembly memory (wasm: a
   * resident tensor that calls of this engine read in place, mixed freely with host tensors).
   */
  upload(t: TensorInput): Promise<DeviceTensor>;
  /**
   * Resolves when every call made so far has finished (on the cuda engine: its stream is idle, and a
   * kernel fault among them rejects it with the CUDA message). Results are usable without it: calls
   * on device tensors run in the order they were made.
   */
  synchronize(): Promise<void>;
  /**
   * `mergeAttention` (the function of the same name) on this engine: host parts merge on the host; parts
   * whose `out` and `lse` are this cuda engine's device tensors (results computed with `returnLse: true`)
   * merge on the GPU into new device tensors, in stream order (float32 arithmetic; at most 64 parts).
   */
  mergeAttention<T extends InputTensor | DeviceTensor>(
    parts: readonly { readonly out: T; readonly lse: T }[],
  ): Promise<{
    out: T extends DeviceTensor ? DeviceTensor : Tensor;
    lse: T extends DeviceTensor ? DeviceTensor : Tensor;
  }>;
  /**
   * A zeroed host tensor `{ data, shape, dtype, location: 'cpu' }` (Float32Array data for float32, Uint16Array
   * for halves) in the memory this engine's calls copy fastest: page-locked memory on the cuda engine, which
   * the GPU reads and writes by DMA without staging; a plain typed array elsewhere. Use it for inputs and for
   * `options.out` / `options.lse`. An input in one must not be written until the call reading it has settled
   * (on every engine, so that code moves between engines unchanged), nor an out read before its call settles.
   */
  hostTensor(shape: readonly number[], dtype: DType): Tensor;
  /** Copies a tensor made by this engine's `upload` (or a cuda result) back to the host. */
  download(t: DeviceTensor): Promise<Tensor>;
  /**
   * A paged KV cache kept inside this engine (its WebAssembly memory, or GPU memory): a pool of `numBlocks`
   * blocks of `blockSize` key rows (any `blockSize >= 1`; `headDimV` defaults to `headDim`, `dtype` to
   * 'float32'). `cache.k` and `cache.v` are resident tensors of shape `[numBlocks, blockSize, numKvHeads,
   * headDim(V)]` that `download` reads; `cache.dispose()` frees it (a finalizer frees a forgotten one).
   * Only this engine's calls accept it. Its contents start unspecified: a row is defined once written.
   */
  createKvCache(options: KvCacheOptions): Promise<KvCache>;
  /**
   * Writes new rows alone (a prefill computed elsewhere, a restored session): sequence b's rows
   * `cuSeqlensNew[b] .. cuSeqlensNew[b + 1] - 1` of `kNew` `[totalNew, numKvHeads, headDim]` and `vNew`
   * `[totalNew, numKvHeads, headDimV]` go to its positions `c .. c + n - 1` (`c = cacheSeqlens[b]`), position
   * p in block `blockTable[b * maxBlocksPerSeq + floor(p / blockSize)]`, row `p % blockSize`. Bad input
   * (a block id outside `[0, numBlocks)` among the blocks a sequence holds, `c + n` beyond
   * `maxBlocksPerSeq * blockSize`, a negative length, a (block, row) written twice, heads/dims/dtype unlike
   * the cache's, a disposed cache or another engine's) is rejected before anything is written.
   */
  writeKvCache(cache: KvCache, kNew: InputTensor, vNew: InputTensor, options: KvCacheWriteOptions): Promise<void>;
  /**
   * For each sequence b with `c = cacheSeqlens[b]` rows in the cache and `n` new rows (`kNew`/`vNew` split by
   * `cuSeqlensNew`, which defaults to `cuSeqlensQ`; without them `n = 0`): writes the new rows at positions
   * `c .. c + n - 1` (as `writeKvCache`), then computes attention for the queries of b (`cuSeqlensQ`) over
   * the keys at positions `0 .. c + n - 1`, so `Lk = c + n` and masks stay bottom-right aligned. It equals
   * `attentionVarlen` on the concatenated keys, to the same tolerance; every option of the function applies.
   * `cacheSeqlens` is read, never written: the caller keeps the lengths (`KvBlocks` can). A rejected call
   * leaves the cache exactly as it was. Results are on q's side, as `attentionVarlen`'s.
   */
  attentionWithKvCache<Q extends InputTensor>(
    q: Q,
    cache: KvCache,
    options: KvCacheCallOptions,
  ): Promise<AttentionResult<ResultTensor<Q>>>;
  dispose(): Promise<void>;
}
