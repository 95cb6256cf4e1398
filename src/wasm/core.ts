/**
 * The wasm engine's driver, platform-neutral: picks the SIMD flavour, owns the shared memory,
 * lays out each call (plan.ts), copies inputs in and results out, and runs the kernel on the
 * calling thread (threads = 1) or on the worker pool. Host specifics come in through `Platform`.
 */
import type { Backend, BackendOutput } from '../backend.js';
import type { KvCacheSpec, KvProblem, KvWrite } from '../kvcache/problem.js';
import type { KvCache } from '../kvcache/types.js';
import { knobs } from '../knobs.js';
import type { Problem } from '../problem.js';
import type { AnyTensor, DeviceTensor, DType, Tensor } from '../types.js';
import { PARAMS_INTS } from './abi.js';
import {
  type CompiledKernel,
  type KernelExports,
  type WasmBackendOptions,
  type WasmFiles,
  compileKernel,
} from './kernel.js';
import { KvCaches, pagingOf } from './kvcache.js';
import {
  type Block,
  type ItemCounts,
  type ItemPlan,
  type KernelSizes,
  type Layout,
  MAX_ITEMS,
  Regions,
  type ResidentInputs,
  countItems,
  layout,
  planItems,
} from './plan.js';
import type { Platform } from './platform.js';
import { writeParams } from './params.js';
import { WorkerPool, disposedError } from './pool.js';
import { WasmTensor } from './tensor.js';

export type { CompiledKernel, WasmBackendOptions, WasmFiles } from './kernel.js';

const PAGE = 65536;
const MAX_PAGES = 65536; // 4 GiB, the most a 32-bit wasm memory can address
const MAX_BYTES = PAGE * MAX_PAGES;
const NAN16 = { float16: 0x7e00, bfloat16: 0x7fc0 } as const;

/** The problem with copies of its host inputs' data (resident ones stay as they are). */
function snapshotHostInputs(p: Problem<AnyTensor>): Problem<AnyTensor> {
  const copy = (t: AnyTensor) => (t.location === 'wasm' ? t : { ...(t as Tensor), data: (t as Tensor).data.slice() });
  return { ...p, q: copy(p.q), k: copy(p.k), v: copy(p.v) };
}

export async function createWasmBackendWith(
  platform: Platform,
  files: WasmFiles | CompiledKernel,
  opts: WasmBackendOptions = {},
): Promise<Backend> {
  const threads = opts.threads ?? platform.defaultThreads();
  if (!Number.isInteger(threads) || threads < 1)
    throw new RangeError(`Expected an integer >= 1 for threads but received ${String(threads)}`);
  const shared = opts.sharedMemory ?? true;
  if (!shared && (threads > 1 || opts.offThread))
    throw new RangeError('Expected threads = 1 on the calling thread with an unshared memory');
  const { module, simd, source } = 'module' in files ? files : await compileKernel(platform, files, opts.simd);
  const memory = new WebAssembly.Memory({ initial: 64, maximum: MAX_PAGES, shared });
  const instance = await WebAssembly.instantiate(module, { env: { memory } });
  const exports = instance.exports as unknown as KernelExports;
  const pool = threads > 1 || opts.offThread ? await WorkerPool.start(platform, module, memory, threads) : null;
  return new WasmBackend(exports, memory, pool, threads, { simd, threads, wasm: source });
}

interface Prepared {
  plan: ItemPlan;
  /** Bytes of the call's own region (its resident inputs excluded). */
  bytes: number;
  /** The same with the inputs in a second place, or 0 (one thread, or inputs over 64 MiB). */
  movedBytes: number;
}

const bytesOf = (dtype: DType) => (dtype === 'float32' ? 4 : 2);
const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
const INPUTS = ['q', 'k', 'v'] as const;

/** Inputs up to this size alternate between two places on calls with workers. */
const ALTERNATE_INPUTS = 64 * 2 ** 20;

class WasmBackend implements Backend {
  readonly name = 'wasm' as const;
  private queue: Promise<unknown> = Promise.resolve();
  /** Calls and uploads enqueued and not yet settled. */
  private busy = 0;
  private readonly prepared = new WeakMap<object, Prepared>();
  private readonly sizes: KernelSizes;
  /** Resident tensors' blocks; each call is laid out around them. */
  private readonly regions: Regions;
  /** Frees the blocks of resident tensors nobody disposed. */
  private readonly finalizer = new FinalizationRegistry<Block>((b) => this.regions.free(b));
  private disposed = false;
  private flip = false;
  /** The KV caches (kvcache.ts): their regions, writes and paged calls go through this engine's queue. */
  private readonly kv: KvCaches;

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
    this.regions = new Regions(this.sizes.heapBase);
    this.kv = new KvCaches({
      owner: this,
      memory,
      regions: this.regions,
      maxBytes: MAX_BYTES,
      disposed: () => this.disposed,
      idle: () => this.busy === 0,
      enqueue: (f) => this.enqueue(f),
      reserve: (end) => this.reserve(end),
      unsupported: (p) => this.unsupported(p),
      run: (p, write) => this.runNow(p, write),
    });
  }

  createKvCache(spec: KvCacheSpec): Promise<KvCache> {
    return this.kv.create(spec);
  }
  writeKvCache(p: KvWrite<AnyTensor>): Promise<void> {
    return this.kv.write(p);
  }
  attentionWithKvCache(p: KvProblem<AnyTensor>): Promise<BackendOutput> {
    return this.kv.attend(p);
  }

  /** Bytes and count of live resident tensors (tests, diagnostics). */
  get resident(): { bytes: number; count: number } {
    return { bytes: this.regions.bytes, count: this.regions.count };
  }

  checkInputs(p: Problem<AnyTensor>): void {
    for (const n of INPUTS) if (p[n].location === 'wasm') WasmTensor.blockOf(p[n], n, this);
  }

  /** Copies a host tensor into a block of the wasm memory that stays until dispose() (or the finalizer). */
  upload(t: Tensor): Promise<DeviceTensor> {
    if (t === null || typeof t !== 'object' || !ArrayBuffer.isView((t as Tensor).data))
      return Promise.reject(
        new TypeError(
          `Expected a host tensor { data, shape, dtype } for upload but received ${t === null || typeof t !== 'object' ? String(t) : `a tensor on '${(t as AnyTensor).location}'`}`,
        ),
      );
    const want =
      t.dtype === 'float32' ? Float32Array : t.dtype === 'float16' || t.dtype === 'bfloat16' ? Uint16Array : null;
    if (!want)
      return Promise.reject(
        new TypeError(
          `Expected one of 'float32', 'float16', 'bfloat16' for dtype but received ${JSON.stringify(t.dtype)}`,
        ),
      );
    if (!(t.data instanceof want))
      return Promise.reject(
        new TypeError(
          `Expected a ${want.name} for a '${t.dtype}' tensor's data but received ${t.data.constructor.name}`,
        ),
      );
    if (
      !Array.isArray(t.shape) ||
      !t.shape.every((x) => Number.isInteger(x) && x >= 0) ||
      t.data.length !== sizeOf(t.shape)
    )
      return Promise.reject(
        new RangeError(
          `Expected ${sizeOf(t.shape ?? [])} elements (shape [${(t.shape ?? []).join(', ')}]) for data but received ${t.data.length}`,
        ),
      );
    // In the queue: a call in flight may use the memory the block will take.
    return this.enqueue(() => {
      if (this.disposed) throw disposedError();
      const bytes = t.data.byteLength;
      if (this.regions.fit(bytes) + bytes > MAX_BYTES)
        throw new RangeError(
          `Expected a tensor that fits the wasm engine's 4 GiB memory but received ${(bytes / 2 ** 30).toFixed(2)} GiB`,
        );
      const block = this.regions.take(bytes);
      this.reserve(block.end);
      new Uint8Array(this.memory.buffer, block.start, bytes).set(
        new Uint8Array(t.data.buffer, t.data.byteOffset, bytes),
      );
      const r = new WasmTensor(t.shape, t.dtype, this, block);
      this.finalizer.register(r, block, r);
      return r;
    });
  }

  async download(t: DeviceTensor): Promise<Tensor> {
    if (t === null || typeof t !== 'object')
      throw new TypeError(`Expected a resident tensor for download but received ${String(t)}`);
    if (this.disposed) throw disposedError();
    // results are host tensors even when q was resident: downloading one is a copy
    const host = t as unknown as Tensor;
    if (t.location !== 'wasm' && t.location !== 'cuda' && ArrayBuffer.isView(host.data))
      return { data: host.data.slice(), shape: [...host.shape], dtype: host.dtype, location: 'cpu' };
    const block = WasmTensor.blockOf(t, 'download', this);
    const n = sizeOf(t.shape);
    const data = t.dtype === 'float32' ? new Float32Array(n) : new Uint16Array(n);
    new Uint8Array(data.buffer).set(new Uint8Array(this.memory.buffer, block.start, n * bytesOf(t.dtype)));
    return { data, shape: [...t.shape], dtype: t.dtype, location: 'cpu' };
  }

  /** Frees a resident tensor's block now (its dispose()). */
  release(block: Block, t: WasmTensor): void {
    this.finalizer.unregister(t);
    this.regions.free(block);
  }

  private reserve(end: number): void {
    const have = this.memory.buffer.byteLength;
    if (end > have) this.memory.grow(Math.ceil((end - have) / PAGE));
  }

  /**
   * One call at a time: calls and uploads lay themselves out in the memory's free gaps. An idle engine
   * starts `f` at once, so a call's host inputs are copied into the memory before the call returns.
   */
  private enqueue<R>(f: () => R | Promise<R>): Promise<R> {
    const r = this.busy === 0 ? (async () => f())() : this.queue.then(f);
    this.busy++;
    // the queue must not hold the last result (a resident tensor the finalizer is to free)
    this.queue = r
      .then(
        () => undefined,
        () => undefined,
      )
      .then(() => {
        this.busy--;
      });
    return r;
  }

  unsupported(p: Problem<AnyTensor>): string | null {
    for (const n of INPUTS)
      if (p[n].location === 'cuda')
        return `Expected a host or wasm-resident tensor for ${n} but received a cuda tensor; download() it first`;
    // Sized from counts alone: nothing proportional to the call is allocated before it is known to fit.
    const counts = countItems(p);
    if (counts.count > MAX_ITEMS)
      return `Expected a call of at most ${MAX_ITEMS} work items (sequences x kv heads x blocks of query rows) for the wasm engine but received one of ${counts.count}; split the batch`;
    const lay = this.layoutOf(p, counts, false, this.sizes.heapBase);
    const bytes = lay.end - lay.params;
    const end = this.regions.fit(bytes) + bytes;
    if (end > MAX_BYTES) {
      const gib = (end / 2 ** 30).toFixed(2);
      return `Expected a call that fits the wasm engine's 4 GiB memory (inputs, outputs and work space) but received one that needs ${gib} GiB; split the batch`;
    }
    return null;
  }

  run(p: Problem<AnyTensor>): Promise<BackendOutput> {
    // A call that must wait reads its host inputs now, so the caller may reuse the arrays at once.
    const call = this.busy === 0 ? p : snapshotHostInputs(p);
    return this.enqueue(() => this.runNow(call));
  }

  /** Settles once every call and upload enqueued so far has (whatever their outcome). */
  async synchronize(): Promise<void> {
    await this.queue;
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.kv.disposeAll();
    await this.pool?.terminate();
  }

  /** The layout of a call from `base`, its resident inputs (location 'wasm') left out at offset 0. */
  private layoutOf(
    p: Problem<AnyTensor>,
    plan: ItemCounts,
    moved: boolean,
    base: number,
    resident?: ResidentInputs,
  ): Layout {
    const res: ResidentInputs = { ...resident };
    for (const n of INPUTS) if (p[n].location === 'wasm') res[n] ??= 0;
    const { count, parentCount, slotCount } = plan;
    const tableInts = pagingOf(p)?.blockTable.length ?? 0;
    return layout(p, this.sizes, this.threads, count, parentCount, slotCount, moved, base, res, tableInts);
  }

  private prepare(p: Problem<AnyTensor>): Prepared {
    let prep = this.prepared.get(p);
    if (!prep) {
      const plan = planItems(p);
      const base = this.sizes.heapBase;
      const lay = this.layoutOf(p, plan, false, base);
      const bytes = lay.end - lay.params;
      let movedBytes = 0;
      // host inputs (the part of [q, out) that is not resident) small enough to alternate
      const hostInputs = INPUTS.reduce(
        (n, x) => n + (p[x].location === 'wasm' ? 0 : (p[x] as Tensor).data.byteLength),
        0,
      );
      if (this.pool && hostInputs <= ALTERNATE_INPUTS) {
        const moved = this.layoutOf(p, plan, true, base);
        movedBytes = moved.end - moved.params;
      }
      prep = { plan, bytes, movedBytes };
      this.prepared.set(p, prep);
    }
    return prep;
  }

  /** One call, in the queue. A KV cache call (kvcache.ts) writes its new rows with `write`, after every check. */
  private async runNow(p: Problem<AnyTensor>, write?: () => void): Promise<BackendOutput> {
    if (this.disposed) throw disposedError();
    // resident inputs: checked again here, as one may have been disposed while the call was queued
    const resident: ResidentInputs = {};
    for (const n of INPUTS) if (p[n].location === 'wasm') resident[n] = WasmTensor.blockOf(p[n], n, this).start;
    const prep = this.prepare(p);
    const { plan } = prep;
    this.flip = !this.flip;
    let moved = this.flip && prep.movedBytes > 0;
    if (moved && this.regions.fit(prep.movedBytes) + prep.movedBytes > MAX_BYTES) moved = false;
    const bytes = moved ? prep.movedBytes : prep.bytes;
    const base = this.regions.fit(bytes);
    if (base + bytes > MAX_BYTES) throw new RangeError(this.unsupported(p) ?? 'too big');
    const lay = this.layoutOf(p, plan, moved, base, resident);
    this.reserve(lay.end);
    write?.();
    const buf = this.memory.buffer;
    const paging = pagingOf(p);

    writeParams(new Int32Array(buf, lay.params, PARAMS_INTS), p, lay, plan.count, paging);
    if (paging) new Int32Array(buf, lay.table, paging.blockTable.length).set(paging.blockTable);
    new Int32Array(buf, lay.items, plan.items.length).set(plan.items);
    new Int32Array(buf, lay.parents, plan.parents.length).set(plan.parents);
    if (p.alibiSlopes) {
      const a = new Float32Array(buf, lay.alibi, p.numHeads);
      for (let h = 0; h < p.numHeads; h++) a[h] = p.alibiSlopes[h]! * Math.LOG2E;
    }
    if (p.sinks) {
      const s = new Float32Array(buf, lay.sinks, p.numHeads);
      for (let h = 0; h < p.numHeads; h++) s[h] = p.sinks[h]! * Math.LOG2E;
    }

    const half = p.dtype !== 'float32';
    const put = (at: number, data: Tensor['data']) => {
      if (half) new Uint16Array(buf, at, data.length).set(data as Uint16Array);
      else new Float32Array(buf, at, data.length).set(data as Float32Array);
    };
    for (const n of INPUTS) if (resident[n] === undefined) put(lay[n], (p[n] as Tensor).data);
    const outLen = p.totalQ * p.numHeads * p.headDimV,
      lseLen = p.totalQ * p.numHeads;
    if (knobs.poisonOutputs) {
      if (half) new Uint16Array(buf, lay.out, outLen).fill(NAN16[p.dtype as 'float16' | 'bfloat16']);
      else new Float32Array(buf, lay.out, outLen).fill(NaN);
      if (p.returnLse) new Float32Array(buf, lay.lse, lseLen).fill(NaN);
    }

    // The result arrays are allocated, and their pages touched, while the workers compute:
    // fresh pages cost a fault each (16 us per 4 KiB on the development VM), which would
    // otherwise come after the kernel. With threads = 1 there is nothing to overlap. The caller's
    // arrays (options.out / options.lse) are taken as they are, and written only after the kernel.
    const outInto = p.outInto as Tensor | null,
      lseInto = p.lseInto as Tensor | null;
    const allocate = (touch: boolean) => {
      const o = outInto ? outInto.data : half ? new Uint16Array(outLen) : new Float32Array(outLen);
      const l = lseInto ? (lseInto.data as Float32Array) : p.returnLse ? new Float32Array(lseLen) : null;
      if (touch) {
        if (!outInto) o.fill(0);
        if (!lseInto) l?.fill(0);
      }
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
    // by dtype, not instanceof: the caller's array may come from another realm (an iframe)
    if (half) (outData as Uint16Array).set(new Uint16Array(buf, lay.out, outLen));
    else (outData as Float32Array).set(new Float32Array(buf, lay.out, outLen));
    lseData?.set(new Float32Array(buf, lay.lse, lseLen));
    const out: Tensor = outInto ?? { data: outData, shape: [...p.outShape], dtype: p.dtype, location: 'cpu' };
    const lse: Tensor | null =
      lseInto ?? (lseData ? { data: lseData, shape: [...p.lseShape], dtype: 'float32', location: 'cpu' } : null);
    return { out, lse };
  }
}
