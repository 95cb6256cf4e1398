/** Public types of flashattn. One definition, shared by every entry point and engine. */

export type DType = 'float32' | 'float16' | 'bfloat16';
export type BackendName = 'wasm' | 'cuda';
export type HostData = Float32Array | Uint16Array;

/** A dense row-major tensor. `Float32Array` data is float32; `Uint16Array` data holds float16 or bfloat16 bits. */
export interface Tensor {
  readonly data: HostData;
  readonly shape: readonly number[];
  readonly dtype: DType;
  /** 'cpu' (default) or 'cuda' for a tensor that lives on the GPU (see `Engine.upload`). */
  readonly location?: 'cpu' | 'cuda';
}

/** A tensor whose data lives in GPU memory; made by `engine.upload` or returned by the cuda engine. */
export interface DeviceTensor {
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly location: 'cuda';
  /** Frees the GPU memory now; a finalizer frees what is forgotten. */
  dispose(): void;
}

export type AnyTensor = Tensor | DeviceTensor;

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
  /** Also return the natural log-sum-exp of each row's scores. Default false. */
  returnLse?: boolean;
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
  attentionVarlen<T extends AnyTensor>(q: T, k: T, v: T, options: VarlenOptions): Promise<AttentionResult<T>>;
  attention<T extends AnyTensor>(q: T, k: T, v: T, options?: AttentionOptions): Promise<AttentionResult<T>>;
  /** Copies a host tensor to the GPU (cuda engine only). */
  upload(t: Tensor): Promise<DeviceTensor>;
  /** Copies a device tensor back to the host (cuda engine only). */
  download(t: DeviceTensor): Promise<Tensor>;
  dispose(): Promise<void>;
}
