/**
 * The CUDA engine: loads the native addon (build/Release/flashattn_cuda.node, or the path in
 * FLASHATTN_CUDA_ADDON), checks for a usable GPU, and turns Problems into addon calls, each with
 * the planner's knobs (src/knobs.ts: read once at load; the addon reads no environment). When it
 * cannot run, `loadCudaBackend` throws one Error that lists everything it tried and why; the
 * façade reports that as `fallbackReason` ('auto') or as the error of `backend: 'cuda'`.
 *
 * Precision: float16 and bfloat16 are computed natively (tensor-core products of the inputs,
 * float32 accumulation and softmax, P rounded to the input type before P·V). float32 inputs
 * are converted on the GPU to float16 (10-bit mantissa; values beyond ±65504 overflow) and
 * computed as float16 inputs, with float32 output and lse: `info.float32Compute = 'float16'`.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Backend, BackendOutput } from '../backend.js';
import { knobs, type Knobs } from '../knobs.js';
import type { Problem } from '../problem.js';
import type { AnyTensor, DType, DeviceTensor, HostData, Tensor } from '../types.js';

/** The addon's device memory handle (csrc/device_buffer.cc). */
export interface NativeBuffer {
  readonly bytes: number;
  readonly disposed: boolean;
  dispose(): void;
}

export interface NativeDeviceInfo {
  runtimeVersion: number;
  driverVersion: number;
  error?: string;
  count?: number;
  name?: string;
  major?: number;
  minor?: number;
  multiProcessorCount?: number;
  totalGlobalMem?: number;
  l2CacheSize?: number;
  sharedMemPerBlockOptin?: number;
}

/** What one addon attention call reports besides its outputs. */
export interface NativeRunInfo {
  kernelMs: number;
  minMs: number;
  splits: number;
  tile: TileName;
  headDimClass: number;
  numWork: number;
  blocksPerSm: number;
}

export interface NativeAddon {
  deviceInfo(): NativeDeviceInfo;
  upload(data: HostData): Promise<NativeBuffer>;
  download(buffer: NativeBuffer, into: HostData): Promise<void>;
  allocDevice(bytes: number): Promise<NativeBuffer>;
  /** Bytes of device memory held by live buffers (user tensors and calls in flight). */
  liveBytes(): number;
  attention(
    args: NativeArgs,
    q: NativeBuffer | HostData,
    k: NativeBuffer | HostData,
    v: NativeBuffer | HostData,
    out?: HostData,
    lse?: Float32Array | null,
  ): Promise<NativeRunInfo & { out?: NativeBuffer; lse?: NativeBuffer }>;
}

interface NativeArgs {
  dtype: DType;
  cuSeqlensQ: Int32Array;
  cuSeqlensK: Int32Array;
  totalQ: number;
  totalK: number;
  maxSeqlenQ: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  headDimV: number;
  windowLeft: number;
  windowRight: number;
  softmaxScale: number;
  softcap: number;
  alibiSlopes: Float32Array | null;
  fixedSeqlenQ: number;
  returnLse: boolean;
  poison: boolean;
  /** The planner's knobs (src/knobs.ts; `time` overrides the first two): 0 = the planner decides. */
  forceSplits: number;
  /** 0 = auto, else 1 + the index in TILES ('wgmma' counts as auto: the planner takes it itself). */
  forceTile: number;
  /** false keeps the mma.sync kernel on sm_90. */
  wgmma: boolean;
  order: Knobs['cudaOrder'];
  timeIters?: number;
}

/**
 * Kernel tiles (cuda/tile.h): 128 query rows, or 16 for decode-like calls, on mma.sync; 'wgmma' is
 * the Hopper kernel's 128-row tile, which the planner picks itself on sm_90 for the fast path
 * (forcing 'main' keeps the mma.sync kernel).
 */
export type TileName = 'main' | 'small' | 'wgmma';
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
}

const ADDON_NAME = 'flashattn_cuda.node';
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

const bytesOf = (dtype: DType) => (dtype === 'float32' ? 4 : 2);
const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** A tensor in GPU memory. The native buffer is private, so a spread copy is not a device tensor. */
class CudaTensor implements DeviceTensor {
  readonly location = 'cuda' as const;
  readonly #buffer: NativeBuffer;

  constructor(
    readonly shape: readonly number[],
    readonly dtype: DType,
    buffer: NativeBuffer,
  ) {
    this.shape = Object.freeze([...shape]);
    this.#buffer = buffer;
  }

  static bufferOf(t: AnyTensor, name: string): NativeBuffer {
    if (!(t instanceof CudaTensor))
      throw new TypeError(
        `Expected a device tensor made by this engine (upload or a cuda result) for ${name} but received a plain object`,
      );
    if (t.#buffer.disposed)
      throw new TypeError(`Expected a live device tensor for ${name} but received one that was disposed`);
    const need = sizeOf(t.shape) * bytesOf(t.dtype);
    if (t.#buffer.bytes < need)
      throw new RangeError(`Expected ${need} bytes of device memory for ${name} but received ${t.#buffer.bytes}`);
    return t.#buffer;
  }

  dispose(): void {
    this.#buffer.dispose();
  }
}

function here(): string {
  return path.dirname(fileURLToPath(import.meta.url));
}

/** The prebuilt addon's package for this platform, as sharp and esbuild name theirs. */
export const PLATFORM_PACKAGE = `@flashattn/cuda-${process.platform}-${process.arch}`;

/**
 * Where the addon may be, in order: FLASHATTN_CUDA_ADDON (knobs.cudaAddon), then a local build
 * (build/Release of this package: `npm ci` in the repository, or `flashattn build-cuda`), then the
 * prebuilt platform package.
 */
export function addonCandidates(): { path: string | null; from: string }[] {
  const list: { path: string | null; from: string }[] = [];
  if (knobs.cudaAddon) list.push({ path: path.resolve(knobs.cudaAddon), from: 'FLASHATTN_CUDA_ADDON' });
  // src/cuda/backend.ts and dist/cuda/backend.js are both two levels below the package root.
  list.push({ path: path.resolve(here(), '..', '..', 'build', 'Release', ADDON_NAME), from: 'a local build' });
  let prebuilt: string | null = null;
  try {
    prebuilt = createRequire(import.meta.url).resolve(`${PLATFORM_PACKAGE}/${ADDON_NAME}`);
  } catch {
    /* not installed */
  }
  list.push({ path: prebuilt, from: `the prebuilt package ${PLATFORM_PACKAGE}` });
  return list;
}

let cached: { addon: NativeAddon; path: string; from: string } | null = null;

function loadAddon(): { addon: NativeAddon; path: string; from: string } {
  if (cached) return cached;
  const require = createRequire(import.meta.url);
  const tried: string[] = [];
  for (const c of addonCandidates()) {
    if (c.path === null || !existsSync(c.path)) {
      tried.push(`${c.from}: ${c.path === null ? 'not installed' : `${c.path} not found`}`);
      continue;
    }
    try {
      cached = { addon: require(c.path) as NativeAddon, path: c.path, from: c.from };
      return cached;
    } catch (e) {
      tried.push(`${c.from}: ${c.path} failed to load: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  const fix =
    process.platform === 'linux' && process.arch === 'x64'
      ? `install ${PLATFORM_PACKAGE} (an optional dependency of flashattn), or run \`npx flashattn build-cuda\` (needs nvcc and cmake)`
      : `no prebuilt addon exists for ${process.platform}-${process.arch}; run \`npx flashattn build-cuda\` (needs nvcc and cmake)`;
  throw new Error(`the CUDA addon is not installed (${tried.join('; ')}); ${fix}`);
}

/** Why the driver cannot run CUDA, in a user's words (the runtime's own status for the rest). */
function driverProblem(dev: NativeDeviceInfo): string {
  if (dev.driverVersion === 0)
    return 'no NVIDIA driver is installed (or it cannot be loaded), so there is no GPU to use';
  const v = (x: number) => `${Math.floor(x / 1000)}.${(x % 1000) / 10}`;
  if (dev.driverVersion < dev.runtimeVersion)
    return `the NVIDIA driver supports CUDA ${v(dev.driverVersion)} but the addon needs CUDA ${v(dev.runtimeVersion)}: update the driver`;
  return `no CUDA device: ${dev.error}`;
}

/** The loaded addon, for tests and benchmarks (throws like loadCudaBackend when it cannot load). */
export function cudaAddon(): NativeAddon {
  return loadAddon().addon;
}

export async function loadCudaBackend(): Promise<CudaBackend> {
  const { addon, path: addonPath, from } = loadAddon();
  const dev = addon.deviceInfo();
  if (dev.error !== undefined) throw new Error(`${driverProblem(dev)} (addon from ${from}: ${addonPath})`);
  if ((dev.major ?? 0) < 8)
    throw new Error(
      `no usable CUDA device: ${dev.name} has compute capability ${dev.major}.${dev.minor}; the CUDA engine needs 8.0 or newer`,
    );
  return new CudaEngine(addon, `${addonPath} (${from})`, dev);
}

class CudaEngine implements CudaBackend {
  readonly name = 'cuda' as const;
  readonly threads = 1;
  readonly info: Readonly<Record<string, string | number | boolean>>;

  constructor(
    readonly addon: NativeAddon,
    addonPath: string,
    dev: NativeDeviceInfo,
  ) {
    const v = (x: number) => `${Math.floor(x / 1000)}.${(x % 1000) / 10}`;
    this.info = Object.freeze({
      device: dev.name ?? 'unknown',
      computeCapability: `${dev.major}.${dev.minor}`,
      multiprocessors: dev.multiProcessorCount ?? 0,
      memoryGiB: Math.round(((dev.totalGlobalMem ?? 0) / 2 ** 30) * 10) / 10,
      cudaRuntime: v(dev.runtimeVersion),
      cudaDriver: v(dev.driverVersion),
      float32Compute: 'float16',
      addon: addonPath,
    });
  }

  unsupported(p: Problem<AnyTensor>): string | null {
    const group = p.numHeads / p.numKvHeads;
    if (p.maxSeqlenQ >= MAX_SEQLEN || p.maxSeqlenK >= MAX_SEQLEN || p.maxSeqlenQ * group >= MAX_SEQLEN)
      return `the cuda engine supports sequences (times grouped heads) shorter than ${MAX_SEQLEN} rows; received maxSeqlenQ = ${p.maxSeqlenQ}, maxSeqlenK = ${p.maxSeqlenK}, ${group} query heads per kv head`;
    return null;
  }

  private args(p: Problem<AnyTensor>, extra: Partial<NativeArgs> = {}): NativeArgs {
    // Window widths beyond any sequence mean "unbounded"; clamping keeps them in int32.
    const cap = p.maxSeqlenQ + p.maxSeqlenK + 1;
    const w = (x: number) => (x < 0 ? -1 : Math.min(x, cap));
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
      windowLeft: w(p.windowLeft),
      windowRight: w(p.windowRight),
      softmaxScale: p.softmaxScale,
      softcap: p.softcap,
      alibiSlopes: p.alibiSlopes,
      fixedSeqlenQ: p.fixedSeqlenQ,
      returnLse: p.returnLse,
      poison: knobs.poisonOutputs,
      ...knobArgs(),
      ...extra,
    };
  }

  private operands(p: Problem<AnyTensor>): [NativeBuffer | HostData, NativeBuffer | HostData, NativeBuffer | HostData] {
    if (p.q.location === 'cuda')
      return [CudaTensor.bufferOf(p.q, 'q'), CudaTensor.bufferOf(p.k, 'k'), CudaTensor.bufferOf(p.v, 'v')];
    return [(p.q as Tensor).data, (p.k as Tensor).data, (p.v as Tensor).data];
  }

  async run(p: Problem<AnyTensor>): Promise<BackendOutput> {
    const [q, k, v] = this.operands(p);
    const args = this.args(p);
    if (p.q.location === 'cuda') {
      const r = await this.addon.attention(args, q, k, v);
      return {
        out: new CudaTensor(p.outShape, p.dtype, r.out!),
        lse: r.lse ? new CudaTensor(p.lseShape, 'float32', r.lse) : null,
      };
    }
    const n = sizeOf(p.outShape);
    const out = p.dtype === 'float32' ? new Float32Array(n) : new Uint16Array(n);
    const lse = p.returnLse ? new Float32Array(sizeOf(p.lseShape)) : null;
    await this.addon.attention(args, q, k, v, out, lse);
    const t = (data: HostData, shape: readonly number[], dtype: DType): Tensor => ({
      data,
      shape,
      dtype,
      location: 'cpu',
    });
    return { out: t(out, p.outShape, p.dtype), lse: lse ? t(lse, p.lseShape, 'float32') : null };
  }

  async time(p: Problem<AnyTensor>, iters: number, overrides: RunOverrides = {}): Promise<NativeRunInfo> {
    const [q, k, v] = this.operands(p);
    const extra: Partial<NativeArgs> = { timeIters: Math.max(1, Math.floor(iters)), poison: false };
    if (overrides.splits) extra.forceSplits = overrides.splits;
    if (overrides.tile) extra.forceTile = TILES.indexOf(overrides.tile) + 1;
    const r = await this.addon.attention(this.args(p, extra), q, k, v);
    r.out?.dispose();
    r.lse?.dispose();
    const { out: _o, lse: _l, ...info } = r;
    return info;
  }

  /** `t` was read and checked by the façade (validate.ts readHostTensor). */
  async upload(t: Tensor): Promise<DeviceTensor> {
    return new CudaTensor(t.shape, t.dtype, await this.addon.upload(t.data));
  }

  async download(t: DeviceTensor): Promise<Tensor> {
    const buf = CudaTensor.bufferOf(t, 'download');
    const n = sizeOf(t.shape);
    const data = t.dtype === 'float32' ? new Float32Array(n) : new Uint16Array(n);
    await this.addon.download(buf, data);
    return { data, shape: [...t.shape], dtype: t.dtype, location: 'cpu' };
  }

  async dispose(): Promise<void> {
    // Device tensors own their memory; the stream and staging buffers live as long as the process.
  }
}
