/**
 * The façade: picks an engine, validates every call once, and hands engines a packed Problem.
 * It is platform-neutral: the entry points (src/node.ts, the browser entry) supply the loaders.
 * Loading reads like sharp's: env override, then the CUDA addon, then WebAssembly; every failure
 * is kept so 'auto' can say why it fell back and a forced backend can say what it tried.
 */
import type { Backend, BackendOutput } from './backend.js';
import type { Problem } from './problem.js';
import type {
  AnyTensor,
  AttentionOptions,
  AttentionResult,
  BackendName,
  DType,
  DeviceTensor,
  Engine,
  EngineOptions,
  InputTensor,
  ResultTensor,
  Tensor,
  TensorInput,
  VarlenOptions,
} from './types.js';
import { checkKeys, intIn, rangeErr, readKey, typeErr } from './errors.js';
import { knobErrors, knobs } from './knobs.js';
import type { KvCache, KvCacheCallOptions, KvCacheOptions, KvCacheWriteOptions } from './kvcache/types.js';
import { readKvCache, validateKvCacheOptions, validateKvCall, validateKvWrite } from './kvcache/validate.js';
import { mergeAttention, partsLayout } from './merge.js';
import { DTYPES, MAX_ELEMENTS, readShape } from './inputs.js';
import { callerTensor, readHostTensor, validateFixed, validateVarlen } from './validate.js';

export type Loader = (options: EngineOptions) => Promise<Backend>;
export type Loaders = Record<BackendName, Loader>;

/** Worker threads an engine may start (each costs about 8 MB and an OS thread). */
export const MAX_THREADS = 256;

function checkEngineOptions(o: EngineOptions): EngineOptions {
  if (o === null || typeof o !== 'object') throw typeErr('an options object', 'createEngine options', o);
  checkKeys(o, ['backend', 'threads', 'wasm'], 'options');
  const backend = readKey(o, 'backend', 'options.backend');
  if (backend !== undefined && backend !== 'auto' && backend !== 'wasm' && backend !== 'cuda') {
    if (typeof backend !== 'string') throw typeErr("'auto', 'wasm' or 'cuda'", 'options.backend', backend);
    throw rangeErr("'auto', 'wasm' or 'cuda'", 'options.backend', backend);
  }
  const threads = readKey(o, 'threads', 'options.threads');
  if (threads !== undefined) intIn(threads, 'options.threads', 1, MAX_THREADS);
  return { backend, threads, wasm: readKey(o, 'wasm', 'options.wasm') } as EngineOptions;
}

/**
 * createEngine over the loaders of one entry point (src/node.ts, a browser entry): 'auto' (default)
 * tries cuda, then wasm. This module imports no engine, so each entry bundles only its own.
 */
export async function createEngineWith(loaders: Loaders, options: EngineOptions = {}): Promise<Engine> {
  options = checkEngineOptions(options);
  if (options.backend === undefined && knobErrors.length > 0) throw new RangeError(knobErrors[0]);
  const wanted = options.backend ?? knobs.backend;
  if (wanted === 'cuda' || wanted === 'wasm') {
    try {
      return new FacadeEngine(await loaders[wanted](options));
    } catch (e) {
      throw new Error(`flashattn: backend '${wanted}' could not be loaded: ${(e as Error).message}`, { cause: e });
    }
  }
  let reason: string;
  try {
    return new FacadeEngine(await loaders.cuda(options));
  } catch (e) {
    reason = `cuda: ${(e as Error).message}`;
  }
  return new FacadeEngine(await loaders.wasm(options), reason);
}

class FacadeEngine implements Engine {
  #disposed = false;
  /** The KV caches this engine's createKvCache made: the ownership hook, so a call refuses any other cache. */
  readonly #kvCaches = new WeakSet<object>();
  private readonly ownsKvCache = (c: object): boolean => this.#kvCaches.has(c);

  constructor(
    private readonly impl: Backend,
    readonly fallbackReason?: string,
  ) {}

  /** Every method of a disposed engine refuses at once (its calls in flight were rejected by dispose). */
  private live(method: string): void {
    if (this.#disposed)
      throw new TypeError(
        `Expected an engine that is not disposed for engine.${method} but received a disposed ${this.backend} engine; create another with createEngine()`,
      );
  }

  get backend(): BackendName {
    return this.impl.name;
  }
  get threads(): number {
    return this.impl.threads;
  }
  get info() {
    return this.impl.info;
  }

  async attentionVarlen<Q extends InputTensor>(
    q: Q,
    k: InputTensor,
    v: InputTensor,
    options: VarlenOptions,
  ): Promise<AttentionResult<ResultTensor<Q>>> {
    this.live('attentionVarlen');
    this.refuseResident([q, k, v]);
    return this.run(validateVarlen(q, k, v, options));
  }

  async attention<Q extends InputTensor>(
    q: Q,
    k: InputTensor,
    v: InputTensor,
    options: AttentionOptions = {},
  ): Promise<AttentionResult<ResultTensor<Q>>> {
    this.live('attention');
    this.refuseResident([q, k, v]);
    return this.run(validateFixed(q, k, v, options));
  }

  /** Tensors resident in a wasm engine reach only an engine that keeps such tensors (which checks they are its own). */
  private refuseResident(ts: unknown[]): void {
    if (this.impl.checkInputs) return;
    ts.forEach((t, i) => {
      if (t !== null && typeof t === 'object' && (t as AnyTensor).location === 'wasm') {
        const name = ['q', 'k', 'v'][i];
        const want =
          this.backend === 'cuda'
            ? 'a host or cuda tensor'
            : 'a host tensor (this wasm engine keeps no resident tensors)';
        throw new TypeError(
          `Expected ${want} for ${name} but received a tensor resident in a wasm engine; download() it from that engine first`,
        );
      }
    });
  }

  supports(
    q: InputTensor,
    k: InputTensor,
    v: InputTensor,
    options: AttentionOptions | VarlenOptions = {},
  ): string | null {
    this.live('supports');
    this.refuseResident([q, k, v]);
    const varlen = options !== null && typeof options === 'object' && 'cuSeqlensQ' in options;
    const p = varlen ? validateVarlen(q, k, v, options as VarlenOptions) : validateFixed(q, k, v, options);
    this.impl.checkInputs?.(p);
    return this.impl.unsupported(p);
  }

  private async run<T extends AnyTensor>(p: Problem<AnyTensor>): Promise<AttentionResult<T>> {
    this.impl.checkInputs?.(p);
    const why = this.impl.unsupported(p);
    if (why !== null) throw new RangeError(why);
    return results<T>(p, await this.impl.run(p));
  }

  hostTensor(shape: readonly number[], dtype: DType): Tensor {
    this.live('hostTensor');
    const dims = readShape(shape, 'shape');
    if (!DTYPES.includes(dtype)) throw typeErr(`one of ${DTYPES.map((d) => `'${d}'`).join(', ')}`, 'dtype', dtype);
    const n = dims.reduce((a, b) => a * b, 1);
    if (n >= MAX_ELEMENTS) throw rangeErr(`fewer than ${MAX_ELEMENTS} elements`, 'shape', dims);
    const data = this.impl.hostArray?.(n, dtype) ?? (dtype === 'float32' ? new Float32Array(n) : new Uint16Array(n));
    return { data, shape: dims, dtype, location: 'cpu' };
  }

  async upload(t: TensorInput): Promise<DeviceTensor> {
    this.live('upload');
    const loc = t !== null && typeof t === 'object' ? (t as { location?: unknown }).location : undefined;
    if (loc === 'wasm' || loc === 'cuda')
      throw new TypeError(
        `Expected a host tensor for upload but received a tensor resident in a ${loc} engine; download() it from that engine first`,
      );
    const host = readHostTensor(t, 'upload');
    if (!this.impl.upload)
      throw new TypeError(
        `Expected an engine that keeps tensors (cuda, or wasm on its own thread or a cross-origin isolated page) for upload but this ${this.backend} engine keeps none`,
      );
    return this.impl.upload(host);
  }

  async download(t: DeviceTensor): Promise<Tensor> {
    this.live('download');
    if (t !== null && typeof t === 'object' && t.location === 'wasm' && !this.impl.checkInputs)
      throw new TypeError(
        `Expected a tensor made by this ${this.backend} engine for download but received one resident in a wasm engine; download() it from that engine`,
      );
    if (!this.impl.download)
      throw new TypeError(
        `Expected an engine that keeps tensors for download but this ${this.backend} engine keeps none`,
      );
    return this.impl.download(t);
  }

  async mergeAttention<T extends InputTensor | DeviceTensor>(
    parts: readonly { readonly out: T; readonly lse: T }[],
  ): Promise<{
    out: T extends DeviceTensor ? DeviceTensor : Tensor;
    lse: T extends DeviceTensor ? DeviceTensor : Tensor;
  }> {
    this.live('mergeAttention');
    type R = {
      out: T extends DeviceTensor ? DeviceTensor : Tensor;
      lse: T extends DeviceTensor ? DeviceTensor : Tensor;
    };
    const loc = (t: unknown) =>
      t !== null && typeof t === 'object' ? (t as { location?: unknown }).location : undefined;
    const onDevice =
      Array.isArray(parts) &&
      parts.some((p) => p !== null && typeof p === 'object' && (loc(p.out) === 'cuda' || loc(p.lse) === 'cuda'));
    if (!onDevice) return mergeAttention(parts as never) as unknown as R;
    if (!this.impl.mergeAttention)
      throw new TypeError(
        `Expected host tensors for mergeAttention on a ${this.backend} engine but received device tensors; download() them first`,
      );
    const ps = parts.map((p, i) => {
      const name = `parts[${i}]`;
      if (p === null || typeof p !== 'object') throw typeErr('a part { out, lse }', name, p);
      const dev = (key: 'out' | 'lse') => {
        const t = readKey(p, key, `${name}.${key}`) as DeviceTensor;
        if (loc(t) !== 'cuda')
          throw typeErr(
            "a device tensor of this engine like the other parts' (all host or all device)",
            `${name}.${key}`,
            t,
          );
        return t;
      };
      return { out: dev('out'), lse: dev('lse') };
    });
    const r = await this.impl.mergeAttention(ps, partsLayout(ps));
    return r as unknown as R;
  }

  async synchronize(): Promise<void> {
    this.live('synchronize');
    await this.impl.synchronize?.();
  }

  /** The backend's KV cache method, or the TypeError of an engine without a KV cache. */
  private kv<M extends 'createKvCache' | 'writeKvCache' | 'attentionWithKvCache'>(method: M): NonNullable<Backend[M]> {
    this.live(method);
    const f = this.impl[method];
    if (!f)
      throw new TypeError(
        `Expected an engine with a KV cache for engine.${method} but received a ${this.backend} engine that has none yet`,
      );
    return f.bind(this.impl) as NonNullable<Backend[M]>;
  }

  async createKvCache(options: KvCacheOptions): Promise<KvCache> {
    const create = this.kv('createKvCache');
    const cache = await create(validateKvCacheOptions(options));
    this.#kvCaches.add(cache);
    return cache;
  }

  async writeKvCache(
    cache: KvCache,
    kNew: InputTensor,
    vNew: InputTensor,
    options: KvCacheWriteOptions,
  ): Promise<void> {
    const write = this.kv('writeKvCache');
    await write(validateKvWrite(readKvCache(cache, this.ownsKvCache, this.backend), kNew, vNew, options));
  }

  async attentionWithKvCache<Q extends InputTensor>(
    q: Q,
    cache: KvCache,
    options: KvCacheCallOptions,
  ): Promise<AttentionResult<ResultTensor<Q>>> {
    const attend = this.kv('attentionWithKvCache');
    const p = validateKvCall(readKvCache(cache, this.ownsKvCache, this.backend), q, options);
    return results<ResultTensor<Q>>(p, await attend(p));
  }

  /** Frees the engine; calls in flight and queued are rejected, later calls refused. Safe to call twice. */
  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    await this.impl.dispose();
  }
}

/** A call's results: the caller's own options.out / options.lse objects where it passed them. */
function results<T extends AnyTensor>(
  p: Pick<Problem<AnyTensor>, 'outInto' | 'lseInto'>,
  r: BackendOutput,
): AttentionResult<T> {
  const out = (p.outInto ? callerTensor(p.outInto) : r.out) as T;
  const lse = (p.lseInto ? callerTensor(p.lseInto) : r.lse) as T | null;
  return lse ? { out, lse } : { out };
}

/** Wraps an already-created backend in the façade (tests use it to spy on what reaches an engine). */
export function engineFromBackend(b: Backend, fallbackReason?: string): Engine {
  return new FacadeEngine(b, fallbackReason);
}
