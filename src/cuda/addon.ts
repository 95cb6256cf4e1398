/**
 * The CUDA addon: where it is looked for (FLASHATTN_CUDA_ADDON, a local build, the prebuilt
 * platform package), how it is loaded, and the shapes of what it exports (csrc/addon.cc).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { knobs, type Knobs } from '../knobs.js';
import type { DType, HostData } from '../types.js';

const ADDON_NAME = 'flashattn_cuda.node';

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

/** The plan a call ran (cuda/forward.h PlanInfo). */
export interface NativePlan {
  splits: number;
  tile: TileName;
  headDimClass: number;
  numWork: number;
  blocksPerSm: number;
  /** The work list came from the engine's cache of recent plans. */
  planReused: boolean;
  /** The non-finite-V fix-up ran (cuda/fixup.h: a masked call). */
  fixup: boolean;
  /** float32 computed as float16 pairs on the tensor cores (cuda/split.cuh), to float32 accuracy. */
  split: boolean;
  /**
   * The kernel's fast copy ran (head dims filling their class, no softcap, no ALiBi, a positive
   * scale); otherwise its general copy, on the same tile.
   */
  full: boolean;
}

/** What the timing hook reports: the plan and the kernels' median and fastest time. */
export interface NativeRunInfo extends NativePlan {
  kernelMs: number;
  minMs: number;
  /** The mean over the launches (what back-to-back calls of the same count are compared with). */
  meanMs: number;
}

/** One engine's stream, pinned staging and work-list cache (csrc/context.h). */
export interface NativeContext {
  /** Waits for every call enqueued so far; rejects with the CUDA message of a fault among them. */
  synchronize(): Promise<void>;
  /** Waits, then frees the staging and the cache; device buffers keep the stream until they go. */
  dispose(): Promise<void>;
}

export type NativeOperand = NativeBuffer | HostData;

export interface NativeAddon {
  deviceInfo(): NativeDeviceInfo;
  Context: new () => NativeContext;
  /** Enqueues the copy and returns the buffer at once (the array may change on return). */
  upload(ctx: NativeContext, data: HostData): NativeBuffer;
  download(ctx: NativeContext, buffer: NativeBuffer, into: HostData): Promise<void>;
  /** Resolves once allocated (a size the pool cannot give rejects); `zero` fills it with zeros. */
  allocDevice(ctx: NativeContext, bytes: number, zero?: boolean): Promise<NativeBuffer>;
  /** mergeAttention of device parts into new device buffers, enqueued (returns at once). */
  merge(
    ctx: NativeContext,
    args: { dtype: DType; batch: number; seqlen: number; heads: number; dv: number },
    outs: NativeBuffer[],
    lses: NativeBuffer[],
  ): { out: NativeBuffer; lse: NativeBuffer };
  /**
   * Enqueues the write of a KV cache call (returns at once; host kNew/vNew are copied before it returns);
   * the arguments packed by pack.ts packWrite.
   */
  kvWrite(
    ctx: NativeContext,
    numbers: Float64Array,
    ints: Int32Array,
    kCache: NativeBuffer,
    vCache: NativeBuffer,
    kNew: NativeOperand,
    vNew: NativeOperand,
  ): void;
  /** Bytes of device memory held by live buffers (user tensors and calls in flight). */
  liveBytes(): number;
  /** The stream-ordered pool's bytes: reserved from the driver, and in use. */
  poolBytes(): { reserved: number; used: number };
  /** Test hook: enqueues a kernel that traps (the context's stream then faults). */
  trap(ctx: NativeContext): void;
  /**
   * Device outputs (new, or written into `out` / `lse`): enqueued, returned at once; `out` is returned only
   * when the addon made it (the plan is `lastPlan`'s). The arguments are packed by pack.ts packArgs.
   */
  attention(
    ctx: NativeContext,
    numbers: Float64Array,
    ints: Int32Array,
    q: NativeOperand,
    k: NativeOperand,
    v: NativeOperand,
    out?: NativeBuffer,
    lse?: NativeBuffer,
    kNew?: NativeOperand,
    vNew?: NativeOperand,
  ): { out?: NativeBuffer; lse?: NativeBuffer };
  /** Host outputs: the results are copied into `out` / `lse` once the kernels ran. */
  attention(
    ctx: NativeContext,
    numbers: Float64Array,
    ints: Int32Array,
    q: NativeOperand,
    k: NativeOperand,
    v: NativeOperand,
    out: HostData,
    lse: Float32Array | undefined,
    kNew?: NativeOperand,
    vNew?: NativeOperand,
  ): Promise<NativePlan>;
  /** The plan of the context's last attention call. */
  lastPlan(ctx: NativeContext): NativePlan;
  timeAttention(
    ctx: NativeContext,
    numbers: Float64Array,
    ints: Int32Array,
    q: NativeBuffer,
    k: NativeBuffer,
    v: NativeBuffer,
    iters: number,
  ): Promise<NativeRunInfo>;
  /** Zeroed page-locked host memory (csrc/pinned.h), freed when the garbage collector takes it. */
  hostArray(bytes: number): ArrayBuffer;
  /**
   * Page-locked memory for a call's result (its copy fills it): from the pool of collected results, not
   * zeroed; undefined when 4 GiB of results are alive or none can be had.
   */
  hostArray(bytes: number, result: true): ArrayBuffer | undefined;
  /** Bytes of page-locked memory held by live hostArray buffers. */
  livePinnedBytes(): number;
  /** The link's pinned copy bandwidth and the host copy into pinned memory, GB/s (benchmarks). */
  copyBandwidth(ctx: NativeContext, bytes: number): Promise<CopyBandwidth>;
  /** The GPU's idle microseconds between back-to-back probe kernels (cuda/probe.h; bench/gpu/gaps.mjs). */
  launchGaps(
    ctx: NativeContext,
    probe: { launches: number; blocks: number; spinUs: number; dependent: boolean; allocBetween: number },
  ): Promise<number[]>;
  /**
   * Host microseconds per part of the attention calls since the last hostProfile call (cuda/host_clock.h),
   * then counting again from zero while `on` (benchmarks: bench/gpu/kvprof.mjs --parts).
   */
  hostProfile(on: boolean): { calls: number; us: Record<string, number> };
}

export interface CopyBandwidth {
  toDeviceGBps: number;
  fromDeviceGBps: number;
  /** Pageable -> pinned memcpy on `copyThreads` threads, as a call from typed arrays does it. */
  hostCopyGBps: number;
  /** Page-lock pageable bytes in place (cudaHostRegister), copy them, unlock: GB/s of the whole. */
  registeredGBps: number;
  copyThreads: number;
}

/** Where a paged call's keys live: the KV cache's pool, read through the block table. */
export interface NativePaging {
  blockTable: Int32Array;
  maxBlocks: number;
  blockSize: number;
  /** numBlocks * blockSize. */
  poolRows: number;
  /** An attention call's own write (its kNew / vNew operands), enqueued before its reads. */
  write?: { cuSeqlensNew: Int32Array; cacheSeqlens: Int32Array; totalNew: number };
}

export interface NativeKvWriteArgs extends NativePaging {
  dtype: DType;
  numKvHeads: number;
  headDim: number;
  headDimV: number;
  totalNew: number;
  cuSeqlensNew: Int32Array;
  cacheSeqlens: Int32Array;
}

export interface NativeArgs {
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
  sinks: Float32Array | null;
  /** A KV cache call: k and v are the cache's pools; cuSeqlensK counts each sequence's keys. */
  paged?: NativePaging;
  fixedSeqlenQ: number;
  returnLse: boolean;
  poison: boolean;
  /** options.precision 'float16': float32 inputs converted to float16 (else computed in float32). */
  float32AsHalf?: boolean;
  /** The planner's knobs (src/knobs.ts; `time` overrides the first two): 0 = the planner decides. */
  forceSplits: number;
  /** 0 = auto, else 1 + the index in TILES ('wgmma' counts as auto: the planner takes it itself). */
  forceTile: number;
  /** false keeps the mma.sync kernel on sm_90. */
  wgmma: boolean;
  order: Knobs['cudaOrder'];
}

/**
 * Kernel tiles (cuda/tile.h): 128 query rows, or 16 for decode-like calls, on mma.sync; 'wgmma' is
 * the Hopper kernel's 128-row tile, which the planner picks itself on sm_90 for the fast path
 * (forcing 'main' keeps the mma.sync kernel).
 */
export type TileName = 'main' | 'small' | 'wgmma';

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
export function driverProblem(dev: NativeDeviceInfo): string {
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

export { loadAddon };
