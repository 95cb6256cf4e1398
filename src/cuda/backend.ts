/**
 * The CUDA engine: turns Problems into calls of the native addon (src/cuda/addon.ts loads it) on
 * this engine's own context: one CUDA stream, pinned staging, a cache of recent work lists.
 *
 * Calls on device tensors are stream-ordered, as in PyTorch: a call enqueues its kernels and
 * resolves once they are enqueued; its outputs are valid in stream order for the next call of
 * this engine, `download` and `synchronize` wait for them, and a kernel fault surfaces, with its
 * CUDA message, at the next call that waits. Calls from typed arrays copy the inputs into pinned
 * staging before they return and resolve when the results are back in host memory; arrays made by
 * `hostArray` (engine.hostTensor) are page-locked and copied by DMA in place, without staging.
 *
 * Precision: float16 and bfloat16 are computed natively (tensor-core products of the inputs,
 * float32 accumulation and softmax, P rounded to the input type before P·V). float32 inputs are
 * computed to float32 accuracy as float16 pairs on the tensor cores (cuda/split.cuh: three products
 * per matrix product), about a quarter of the half kernels' speed; with options.precision 'float16' they are converted on
 * the GPU to float16 (values beyond ±65504 overflow) and run on the tensor-core kernels, with
 * float32 output and lse: `info.float32Compute = 'float32'`, `info.float32Fast = 'float16'`.
 */
import type { Backend, BackendOutput } from '../backend.js';
import type { KvCacheSpec, KvProblem, KvWrite } from '../kvcache/problem.js';
import type { KvCache } from '../kvcache/types.js';
import type { PartsLayout } from '../merge.js';
import { CudaKvCaches } from './kvcache.js';
import { packArgs } from './pack.js';
import { CudaTensor, sizeOf } from './tensor.js';
import { knobs } from '../knobs.js';
import type { Problem } from '../problem.js';
import type { AnyTensor, DType, DeviceTensor, HostData, Tensor } from '../types.js';
import {
  type CopyBandwidth,
  type NativeAddon,
  type NativeArgs,
  type NativeBuffer,
  type NativeContext,
  type NativeDeviceInfo,
  type NativeOperand,
  type NativeRunInfo,
  type TileName,
  driverProblem,
  loadAddon,
} from './addon.js';

export { addonCandidates, cudaAddon, PLATFORM_PACKAGE } from './addon.js';
export type { NativeAddon, NativeBuffer, NativeRunInfo, TileName } from './addon.js';

const TILES: readonly TileName[] = ['main', 'small', 'wgmma'];

/** Tuning knobs for benchmarks: force the split count or the tile. */
export interface RunOverrides {
  splits?: number;
  tile?: TileName;
}

export interface CudaBackend extends Backend {
  readonly addon: NativeAddon;
  /** Median kernel time of `iters` launches (CUDA events; no copies), plus the plan used. */
  time(p: Problem<AnyTensor>, iters: number, overrides?: RunOverrides): Promise<NativeRunInfo>;
  /** The same for the attention of a KV cache call (device q; the write is not timed). */
  timeKv(p: KvProblem<AnyTensor>, iters: number): Promise<NativeRunInfo>;
  /** The pinned copy bandwidth each way, measured with `bytes` per copy. */
  copyBandwidth(bytes: number): Promise<CopyBandwidth>;
}

/** Parts one device merge takes (cuda/aux_kernels.h kMaxMergeParts). */
const MAX_MERGE_PARTS = 64;

/**
 * Results from this size on are page-locked (a pooled pinned block): below it the staging copy costs less
 * than a pool round trip.
 */
const PINNED_RESULT_BYTES = 1 << 20;

/** Longest sequence the kernel's 32-bit row arithmetic allows (cuda/params.h kMaxSeqlen). */
const MAX_SEQLEN = 2 ** 28;

/** The knobs' planner overrides, as the addon takes them (cuda/forward.h ForwardArgs). */
function knobArgs(): Pick<NativeArgs, 'forceSplits' | 'forceTile' | 'wgmma' | 'order'> {
  return {
    forceSplits: knobs.cudaSplits,
    forceTile: knobs.cudaTile === 'auto' ? 0 : TILES.indexOf(knobs.cudaTile) + 1,
    wgmma: knobs.cudaWgmma,
    order: knobs.cudaOrder,
  };
}

export async function loadCudaBackend(): Promise<CudaBackend> {
  const { addon, path: addonPath, from } = loadAddon();
  const dev = addon.deviceInfo();
  if (dev.error !== undefined) throw new Error(`${driverProblem(dev)} (addon from ${from}: ${addonPath})`);
  if ((dev.major ?? 0) < 8)
    throw new Error(
      `no usable CUDA device: ${dev.name} has compute capability ${dev.major}.${dev.minor}; the CUDA engine needs 8.0 or newer`,
    );
  return new CudaEngine(addon, new addon.Context(), `${addonPath} (${from})`, dev);
}

class CudaEngine implements CudaBackend {
  readonly name = 'cuda' as const;
  readonly threads = 1;
  readonly info: Readonly<Record<string, string | number | boolean>>;
  #disposed: Promise<void> | null = null;
  /** Calls from typed arrays whose results are still being copied back (dispose waits for them). */
  readonly #copying = new Set<Promise<unknown>>();
  readonly #kv: CudaKvCaches;

  constructor(
    readonly addon: NativeAddon,
    private readonly ctx: NativeContext,
    addonPath: string,
    dev: NativeDeviceInfo,
  ) {
    this.#kv = new CudaKvCaches(this, addon, ctx);
    const v = (x: number) => `${Math.floor(x / 1000)}.${(x % 1000) / 10}`;
    this.info = Object.freeze({
      device: dev.name ?? 'unknown',
      computeCapability: `${dev.major}.${dev.minor}`,
      multiprocessors: dev.multiProcessorCount ?? 0,
      memoryGiB: Math.round(((dev.totalGlobalMem ?? 0) / 2 ** 30) * 10) / 10,
      cudaRuntime: v(dev.runtimeVersion),
      cudaDriver: v(dev.driverVersion),
      float32Compute: 'float32',
      float32Fast: 'float16',
      addon: addonPath,
    });
  }

  unsupported(p: Problem<AnyTensor>): string | null {
    const group = p.numHeads / p.numKvHeads;
    if (p.maxSeqlenQ >= MAX_SEQLEN || p.maxSeqlenK >= MAX_SEQLEN || p.maxSeqlenQ * group >= MAX_SEQLEN)
      return `the cuda engine supports sequences (times grouped heads) shorter than ${MAX_SEQLEN} rows; received maxSeqlenQ = ${p.maxSeqlenQ}, maxSeqlenK = ${p.maxSeqlenK}, ${group} query heads per kv head`;
    return null;
  }

  /** Device tensors are this engine's (another engine's stream would race them). */
  checkInputs(p: Problem<AnyTensor>): void {
    if (p.q.location === 'cuda') for (const n of ['q', 'k', 'v'] as const) CudaTensor.bufferOf(p[n], n, this);
    if (p.q.location !== 'cuda') return; // host out / lse (the façade checked them) take the results
    if (p.outInto) CudaTensor.bufferOf(p.outInto, 'options.out', this);
    if (p.lseInto) CudaTensor.bufferOf(p.lseInto, 'options.lse', this);
  }

  /** Page-locked (cudaMallocHost): calls DMA from and into it without staging; freed when collected. */
  hostArray(length: number, dtype: DType): Float32Array | Uint16Array {
    this.live();
    const buf = this.addon.hostArray(length * (dtype === 'float32' ? 4 : 2));
    return dtype === 'float32' ? new Float32Array(buf) : new Uint16Array(buf);
  }

  /** A new result array; page-locked (pooled) from PINNED_RESULT_BYTES on, while the addon has some. */
  private resultArray(length: number, dtype: DType): Float32Array | Uint16Array {
    const bytes = length * (dtype === 'float32' ? 4 : 2);
    const buf = bytes >= PINNED_RESULT_BYTES ? this.addon.hostArray(bytes, true) : undefined;
    if (dtype === 'float32') return buf ? new Float32Array(buf) : new Float32Array(length);
    return buf ? new Uint16Array(buf) : new Uint16Array(length);
  }

  private args(p: Problem<AnyTensor>, extra: Partial<NativeArgs> = {}): NativeArgs {
    return {
      dtype: p.dtype,
      cuSeqlensQ: p.cuSeqlensQ,
      cuSeqlensK: p.cuSeqlensK,
      totalQ: p.totalQ,
      totalK: p.totalK,
      maxSeqlenQ: p.maxSeqlenQ,
      numHeads: p.numHeads,
      numKvHeads: p.numKvHeads,
      headDim: p.headDim,
      headDimV: p.headDimV,
      // validate.ts stores a width past every sequence as -1, so the widths fit in int32.
      windowLeft: p.windowLeft,
      windowRight: p.windowRight,
      softmaxScale: p.softmaxScale,
      softcap: p.softcap,
      alibiSlopes: p.alibiSlopes,
      sinks: p.sinks,
      fixedSeqlenQ: p.fixedSeqlenQ,
      returnLse: p.returnLse,
      poison: knobs.poisonOutputs,
      float32AsHalf: p.precision === 'float16',
      ...knobArgs(),
      ...extra,
    };
  }

  /** Each of q, k, v: this engine's device buffer or host data (a KV cache call has host q, device k and v). */
  private operands(p: Problem<AnyTensor>): [NativeOperand, NativeOperand, NativeOperand] {
    const op = (t: AnyTensor, name: string): NativeOperand =>
      t.location === 'cuda' ? CudaTensor.bufferOf(t, name, this) : (t as Tensor).data;
    return [op(p.q, 'q'), op(p.k, 'k'), op(p.v, 'v')];
  }

  private live(): void {
    if (this.#disposed) throw new TypeError('Expected a live cuda engine but received one that was disposed');
  }

  async run(p: Problem<AnyTensor>): Promise<BackendOutput> {
    this.live();
    return this.call(p, this.args(p), this.operands(p));
  }

  /** Device q: device results at once (stream order); host q: host results once copied back. */
  private async call(
    p: Problem<AnyTensor>,
    args: NativeArgs,
    [q, k, v]: [NativeOperand, NativeOperand, NativeOperand],
    [kNew, vNew]: [NativeOperand, NativeOperand] | [] = [],
  ): Promise<BackendOutput> {
    if (p.q.location === 'cuda') {
      const outBuf = p.outInto ? CudaTensor.bufferOf(p.outInto, 'options.out', this) : undefined;
      const lseBuf = p.lseInto ? CudaTensor.bufferOf(p.lseInto, 'options.lse', this) : undefined;
      const r = this.addon.attention(this.ctx, ...packArgs(args), q, k, v, outBuf, lseBuf, kNew, vNew);
      return {
        out: p.outInto ?? new CudaTensor(p.outShape, p.dtype, r.out!, this),
        lse: p.lseInto ?? (r.lse ? new CudaTensor(p.lseShape, 'float32', r.lse, this) : null),
      };
    }
    // The caller's host out / lse (options.out, maybe engine.hostTensor's pinned arrays), else new arrays:
    // page-locked from the addon's pool when large (one DMA into them, no staging copy, no first touch).
    const n = sizeOf(p.outShape);
    const out = p.outInto ? (p.outInto as Tensor).data : this.resultArray(n, p.dtype);
    const lse = p.lseInto
      ? ((p.lseInto as Tensor).data as Float32Array)
      : p.returnLse
        ? new Float32Array(sizeOf(p.lseShape))
        : undefined;
    const call = this.addon.attention(this.ctx, ...packArgs(args), q, k, v, out, lse, kNew, vNew);
    this.#copying.add(call);
    try {
      await call;
    } finally {
      this.#copying.delete(call);
    }
    const t = (data: HostData, shape: readonly number[], dtype: DType): Tensor => ({
      data,
      shape,
      dtype,
      location: 'cpu',
    });
    return {
      out: (p.outInto as Tensor | null) ?? t(out, p.outShape, p.dtype),
      lse: (p.lseInto as Tensor | null) ?? (lse ? t(lse, p.lseShape, 'float32') : null),
    };
  }

  async time(p: Problem<AnyTensor>, iters: number, overrides: RunOverrides = {}): Promise<NativeRunInfo> {
    this.live();
    if (p.q.location !== 'cuda') throw new TypeError('Expected device tensors for q, k and v of a timed call');
    const [q, k, v] = this.operands(p) as [NativeBuffer, NativeBuffer, NativeBuffer];
    const extra: Partial<NativeArgs> = { poison: false };
    if (overrides.splits) extra.forceSplits = overrides.splits;
    if (overrides.tile) extra.forceTile = TILES.indexOf(overrides.tile) + 1;
    return this.addon.timeAttention(
      this.ctx,
      ...packArgs(this.args(p, extra)),
      q,
      k,
      v,
      Math.max(1, Math.floor(iters)),
    );
  }

  /** For benchmarks: the pinned copy bandwidth each way, measured with `bytes` per copy. */
  copyBandwidth(bytes: number): Promise<CopyBandwidth> {
    this.live();
    return this.addon.copyBandwidth(this.ctx, bytes);
  }

  createKvCache(spec: KvCacheSpec): Promise<KvCache> {
    this.live();
    return this.#kv.create(spec);
  }

  async writeKvCache(p: KvWrite<AnyTensor>): Promise<void> {
    this.live();
    this.#kv.write(p, this.#kv.checkWrite(p, 'kNew', 'vNew'));
  }

  /**
   * Every check first (the write's operands, q, out, lse, the engine's limits); then one addon call that
   * enqueues the write and the attention after it.
   */
  async attentionWithKvCache(p: KvProblem<AnyTensor>): Promise<BackendOutput> {
    this.live();
    const ops = this.#kv.checkWrite(p, 'options.kNew', 'options.vNew');
    const { problem, paged } = this.#kv.problemOf(p);
    const why = this.unsupported(problem);
    if (why !== null) throw new RangeError(why);
    if (ops) paged.write = { cuSeqlensNew: p.cuSeqlensNew, cacheSeqlens: p.cacheSeqlens, totalNew: p.totalNew };
    return this.call(problem, this.args(problem, { paged }), this.operands(problem), ops ?? []);
  }

  /** Device parts of this engine, merged on the GPU (cuda/aux_kernels.h mergeParts). */
  async mergeAttention(
    parts: readonly { out: DeviceTensor; lse: DeviceTensor }[],
    layout: PartsLayout,
  ): Promise<BackendOutput> {
    this.live();
    if (parts.length > MAX_MERGE_PARTS)
      throw new RangeError(
        `Expected at most ${MAX_MERGE_PARTS} parts for mergeAttention on device tensors but received ${parts.length}; merge them in groups`,
      );
    const outs = parts.map((p, i) => CudaTensor.bufferOf(p.out, `parts[${i}].out`, this));
    const lses = parts.map((p, i) => CudaTensor.bufferOf(p.lse, `parts[${i}].lse`, this));
    const { dtype, batch, seqlen, heads, dv } = layout;
    const r = this.addon.merge(this.ctx, { dtype, batch, seqlen, heads, dv }, outs, lses);
    return {
      out: new CudaTensor(layout.shape, dtype, r.out, this),
      lse: new CudaTensor(layout.lseShape, 'float32', r.lse, this),
    };
  }

  /** For benchmarks: the kernel time of a read-only KV cache call on device q (the attention alone). */
  async timeKv(p: KvProblem<AnyTensor>, iters: number): Promise<NativeRunInfo> {
    this.live();
    if (p.q.location !== 'cuda') throw new TypeError('Expected a device q for a timed KV cache call');
    const { problem, paged } = this.#kv.problemOf(p);
    const [q, k, v] = this.operands(problem) as [NativeBuffer, NativeBuffer, NativeBuffer];
    const args = this.args(problem, { poison: false, paged });
    return this.addon.timeAttention(this.ctx, ...packArgs(args), q, k, v, Math.max(1, Math.floor(iters)));
  }

  /** `t` was read and checked by the façade (validate.ts readHostTensor); the copy is enqueued now. */
  async upload(t: Tensor): Promise<DeviceTensor> {
    this.live();
    return new CudaTensor(t.shape, t.dtype, this.addon.upload(this.ctx, t.data), this);
  }

  async download(t: DeviceTensor): Promise<Tensor> {
    this.live();
    const buf = CudaTensor.bufferOf(t, 'download', this);
    const n = sizeOf(t.shape);
    const data = t.dtype === 'float32' ? new Float32Array(n) : new Uint16Array(n);
    await this.addon.download(this.ctx, buf, data);
    return { data, shape: [...t.shape], dtype: t.dtype, location: 'cpu' };
  }

  synchronize(): Promise<void> {
    this.live();
    return this.ctx.synchronize();
  }

  /** Waits for the calls in flight, then frees the stream's staging and cache (device tensors stay valid to free). */
  dispose(): Promise<void> {
    this.#disposed ??= Promise.allSettled(this.#copying).then(() => {
      this.#kv.disposeAll();
      return this.ctx.dispose();
    });
    return this.#disposed;
  }
}
