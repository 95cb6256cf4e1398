/**
 * The wasm engine's driver, platform-neutral: picks the SIMD flavour, owns the shared memory,
 * lays out each call (plan.ts), copies inputs in and results out, and runs the kernel on the
 * calling thread (threads = 1) or on the worker pool. Host specifics come in through `Platform`.
 */
import type { Backend, BackendOutput } from '../backend.js';
import { debug } from '../debug.js';
import type { Problem } from '../problem.js';
import type { AnyTensor, Tensor } from '../types.js';
import { type ItemPlan, type KernelSizes, type Layout, layout, planItems } from './plan.js';
import type { Platform } from './platform.js';
import { WorkerPool } from './pool.js';

export interface WasmFiles {
  baseline: URL;
  relaxed: URL;
}

/** A kernel the host compiled itself (the browser entry: compileStreaming, or a module the user passed), in place of files. */
export interface CompiledKernel {
  module: WebAssembly.Module;
  simd: 'relaxed' | 'baseline';
  /** Where it came from (info.wasm). */
  source: string;
}

export interface WasmBackendOptions {
  /** Threads to compute on; default: the available cores. 1 runs on the calling thread, with no worker. */
  threads?: number;
  /**
   * 'auto' (default; also FLASHATTN_WASM_SIMD): the relaxed-SIMD build when this WebAssembly
   * engine validates it, else the baseline build. 'relaxed' fails where it does not validate.
   */
  simd?: 'auto' | 'relaxed' | 'baseline';
  /**
   * false: a memory of the calling thread only, for hosts without SharedArrayBuffer; needs threads = 1
   * and a kernel compiled to import an unshared memory (unshare.ts). Default true.
   */
  sharedMemory?: boolean;
  /** Compute on workers even for one thread (a page's main thread must not compute). Default false. */
  offThread?: boolean;
}

interface KernelExports {
  run(params: number, thread: number): void;
  heapBase(): number;
  scratchBytes(D: number, Dv: number): number;
  slotBytes(Dv: number): number;
}

const PAGE = 65536;
const MAX_PAGES = 65536; // 4 GiB, the most a 32-bit wasm memory can address
const MAX_BYTES = PAGE * MAX_PAGES;
const DTYPE_CODE = { float32: 0, float16: 1, bfloat16: 2 } as const;
const NAN16 = { float16: 0x7e00, bfloat16: 0x7fc0 } as const;

function envSimd(): string | undefined {
  return typeof process !== 'undefined' ? process.env?.FLASHATTN_WASM_SIMD : undefined;
}

export async function createWasmBackendWith(platform: Platform, files: WasmFiles | CompiledKernel, opts: WasmBackendOptions = {}): Promise<Backend> {
  const threads = opts.threads ?? platform.defaultThreads();
  if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`Expected an integer >= 1 for threads but received ${String(threads)}`);
  const shared = opts.sharedMemory ?? true;
  if (!shared && (threads > 1 || opts.offThread)) throw new RangeError('Expected threads = 1 on the calling thread with an unshared memory');
  const { module, simd, source } = 'module' in files ? files : await compileKernel(platform, files, opts.simd);
  const memory = new WebAssembly.Memory({ initial: 64, maximum: MAX_PAGES, shared });
  const instance = await WebAssembly.instantiate(module, { env: { memory } });
  const exports = instance.exports as unknown as KernelExports;
  const pool = threads > 1 || opts.offThread ? await WorkerPool.start(platform, module, memory, threads) : null;
  return new WasmBackend(exports, memory, pool, threads, { simd, threads, wasm: source });
}

async function readKernel(platform: Platform, url: URL): Promise<Uint8Array<ArrayBuffer>> {
  try {
    return await platform.readBytes(url);
  } catch (e) {
    throw new Error(`cannot read the wasm kernel ${url.href} (build it with \`npm run build:wasm\`): ${(e as Error).message}`, { cause: e });
  }
}

async function compileKernel(platform: Platform, files: WasmFiles, simdOption: WasmBackendOptions['simd']): Promise<CompiledKernel> {
  const want = simdOption ?? (envSimd() as WasmBackendOptions['simd']) ?? 'auto';
  if (want !== 'auto' && want !== 'relaxed' && want !== 'baseline')
    throw new RangeError(`Expected 'auto', 'relaxed' or 'baseline' for simd but received ${JSON.stringify(want)}`);

  let simd: 'relaxed' | 'baseline' = 'baseline';
  let url = files.baseline;
  let bytes: Uint8Array<ArrayBuffer> | null = null;
  if (want !== 'baseline') {
    // 'auto' falls back to the baseline build when the relaxed one is missing or rejected
    const relaxed = want === 'relaxed' ? await readKernel(platform, files.relaxed) : await readKernel(platform, files.relaxed).catch(() => null);
    if (relaxed && WebAssembly.validate(relaxed)) { simd = 'relaxed'; url = files.relaxed; bytes = relaxed; }
    else if (want === 'relaxed')
      throw new Error('this WebAssembly engine rejects relaxed SIMD (Node 20 needs --experimental-wasm-relaxed-simd); use simd: \'auto\'');
  }
  if (!bytes) {
    bytes = await readKernel(platform, files.baseline);
    if (!WebAssembly.validate(bytes)) throw new Error('this WebAssembly engine does not support SIMD with shared memory (threads)');
  }
  return { module: await WebAssembly.compile(bytes), simd, source: url.href };
}

interface Prepared {
  plan: ItemPlan;
  lay: Layout;
  /** The same with the inputs in a second place, or null (one thread, or inputs over 64 MiB). */
  moved: Layout | null;
}

/** Inputs up to this size alternate between two places on calls with workers. */
const ALTERNATE_INPUTS = 64 * 2 ** 20;

class WasmBackend implements Backend {
  readonly name = 'wasm' as const;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly prepared = new WeakMap<object, Prepared>();
  private readonly sizes: KernelSizes;
  private disposed = false;
  private flip = false;

  constructor(
    private readonly kernel: KernelExports,
    private readonly memory: WebAssembly.Memory,
    private readonly pool: WorkerPool | null,
    readonly threads: number,
    readonly info: Readonly<Record<string, string | number | boolean>>,
  ) {
    this.sizes = {
      heapBase: kernel.heapBase(),
      scratchBytes: (D, Dv) => kernel.scratchBytes(D, Dv) >>> 0,
      slotBytes: (Dv) => kernel.slotBytes(Dv) >>> 0,
    };
  }

  unsupported(p: Problem<AnyTensor>): string | null {
    for (const t of [p.q, p.k, p.v])
      if (t.location === 'cuda') return 'Expected host tensors for the wasm engine but received a cuda tensor; download() it first';
    const { lay } = this.prepare(p);
    if (lay.end > MAX_BYTES) {
      const gib = (lay.end / 2 ** 30).toFixed(2);
      return `Expected a call that fits the wasm engine's 4 GiB memory (inputs, outputs and work space) but received one that needs ${gib} GiB; split the batch`;
    }
    return null;
  }

  run(p: Problem<AnyTensor>): Promise<BackendOutput> {
    // One call at a time: every call lays itself out at the same place in the memory.
    const r = this.queue.then(() => this.runNow(p as Problem<Tensor>));
    this.queue = r.catch(() => undefined);
    return r;
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.pool?.terminate();
  }

  private prepare(p: Problem<AnyTensor>): Prepared {
    let prep = this.prepared.get(p);
    if (!prep) {
      const plan = planItems(p);
      const lay = layout(p, this.sizes, this.threads, plan.count, plan.parentCount, plan.slotCount);
      let moved: Layout | null = null;
      if (this.pool && lay.out - lay.q <= ALTERNATE_INPUTS) {
        moved = layout(p, this.sizes, this.threads, plan.count, plan.parentCount, plan.slotCount, true);
        if (moved.end > MAX_BYTES) moved = null;
      }
      prep = { plan, lay, moved };
      this.prepared.set(p, prep);
    }
    return prep;
  }

  private async runNow(p: Problem<Tensor>): Promise<BackendOutput> {
    if (this.disposed) throw new Error('flashattn: the wasm engine was disposed');
    const prep = this.prepare(p);
    const { plan } = prep;
    this.flip = !this.flip;
    const lay = this.flip && prep.moved ? prep.moved : prep.lay;
    if (lay.end > MAX_BYTES) throw new RangeError(this.unsupported(p) ?? 'too big');
    const have = this.memory.buffer.byteLength;
    if (lay.end > have) this.memory.grow(Math.ceil((lay.end - have) / PAGE));
    const buf = this.memory.buffer;

    const i32 = new Int32Array(buf, lay.params, 32);
    const f32 = new Float32Array(buf, lay.params, 32);
    const cap = p.softcap > 0;
    i32.fill(0);
    i32[1] = plan.count; i32[2] = lay.items; i32[3] = lay.q; i32[4] = lay.k; i32[5] = lay.v;
    i32[6] = lay.out; i32[7] = lay.lse; i32[8] = lay.alibi;
    i32[9] = p.numHeads; i32[10] = p.numKvHeads; i32[11] = p.headDim; i32[12] = p.headDimV;
    i32[13] = DTYPE_CODE[p.dtype];
    f32[14] = cap ? p.softmaxScale / p.softcap : p.softmaxScale * Math.LOG2E;
    f32[15] = cap ? p.softcap * Math.LOG2E : 0;
    i32[16] = p.windowLeft; i32[17] = p.windowRight;
    i32[18] = p.fixedSeqlenQ > 0 ? p.numHeads : 1;
    i32[19] = p.fixedSeqlenQ > 0 ? p.fixedSeqlenQ : p.totalQ;
    i32[20] = lay.scratch; i32[21] = lay.scratchStride; i32[22] = lay.partial; i32[23] = lay.parents;
    new Int32Array(buf, lay.items, plan.items.length).set(plan.items);
    new Int32Array(buf, lay.parents, plan.parents.length).set(plan.parents);
    if (p.alibiSlopes) {
      const a = new Float32Array(buf, lay.alibi, p.numHeads);
      for (let h = 0; h < p.numHeads; h++) a[h] = p.alibiSlopes[h]! * Math.LOG2E;
    }

    const half = p.dtype !== 'float32';
    const put = (at: number, data: Tensor['data']) => {
      if (half) new Uint16Array(buf, at, data.length).set(data as Uint16Array);
      else new Float32Array(buf, at, data.length).set(data as Float32Array);
    };
    put(lay.q, p.q.data); put(lay.k, p.k.data); put(lay.v, p.v.data);
    const outLen = p.totalQ * p.numHeads * p.headDimV, lseLen = p.totalQ * p.numHeads;
    if (debug.poisonOutputs) {
      if (half) new Uint16Array(buf, lay.out, outLen).fill(NAN16[p.dtype as 'float16' | 'bfloat16']);
      else new Float32Array(buf, lay.out, outLen).fill(NaN);
      if (p.returnLse) new Float32Array(buf, lay.lse, lseLen).fill(NaN);
    }

    // The result arrays are allocated, and their pages touched, while the workers compute:
    // fresh pages cost a fault each (16 us per 4 KiB on the development VM), which would
    // otherwise come after the kernel. With threads = 1 there is nothing to overlap.
    const allocate = (touch: boolean) => {
      const o = half ? new Uint16Array(outLen) : new Float32Array(outLen);
      const l = p.returnLse ? new Float32Array(lseLen) : null;
      if (touch) { o.fill(0); l?.fill(0); }
      return { o, l };
    };
    let res: { o: Float32Array | Uint16Array; l: Float32Array | null };
    if (this.pool) {
      const running = this.pool.run(lay.params);
      try {
        res = allocate(true);
      } catch (e) {
        await running.catch(() => undefined);
        throw e;
      }
      await running;
    } else {
      this.kernel.run(lay.params, 0);
      res = allocate(false);
    }
    const { o: outData, l: lseData } = res;
    if (outData instanceof Uint16Array) outData.set(new Uint16Array(buf, lay.out, outLen));
    else outData.set(new Float32Array(buf, lay.out, outLen));
    lseData?.set(new Float32Array(buf, lay.lse, lseLen));
    const out: Tensor = { data: outData, shape: [...p.outShape], dtype: p.dtype, location: 'cpu' };
    const lse: Tensor | null = lseData ? { data: lseData, shape: [...p.lseShape], dtype: 'float32', location: 'cpu' } : null;
    return { out, lse };
  }
}
