/**
 * Every rule of docs/semantics.md's "KV cache (paged)", checked once, before an engine sees the call, in the
 * words of src/errors.ts. The attention options (causal, window, softcap, ...) go through src/validate.ts's
 * own checks, so a KV cache call accepts and rejects them exactly as attentionVarlen does.
 */
import { checkKeys, intIn, nearest, rangeErr, readKey, typeErr, words } from '../errors.js';
import { DTYPES, checkTensor, readHostTensor } from '../inputs.js';
import type { AnyTensor, DType, DeviceTensor, InputTensor, Tensor } from '../types.js';
import { MAX_HEAD_DIM, OPTION_KEYS, checkVarlenOptions, maxLen } from '../validate.js';
import { MAX_ROWS, checkCuSeqlens, checkLayout } from './layout.js';
import type { KvCacheSpec, KvProblem, KvWrite } from './problem.js';
import type { KvCache, KvCacheCallOptions, KvCacheContents, KvCacheOptions, KvCacheWriteOptions } from './types.js';

/** Elements of one cache tensor: indices stay exact in doubles. */
const MAX_ELEMENTS = 2 ** 53;

/** A cache as a call sees it, read once: its dims, where its tensors live, and what the engine gets as `p.cache`. */
export interface CacheView<C> {
  readonly spec: KvCacheSpec;
  /** 'wasm' or 'cuda' for an engine's cache, 'cpu' for host contents (the reference). */
  readonly location: 'cpu' | 'wasm' | 'cuda';
  readonly cache: C;
}

const CACHE_KEYS = ['numBlocks', 'blockSize', 'numKvHeads', 'headDim', 'headDimV', 'dtype'] as const;
const WRITE_KEYS = ['cacheSeqlens', 'blockTable', 'cuSeqlensNew'] as const;
const CALL_KEYS = ['cuSeqlensQ', 'cacheSeqlens', 'blockTable', 'kNew', 'vNew', 'cuSeqlensNew'] as const;

const dims = (numBlocks: number, blockSize: number, name: string) => {
  if (numBlocks * blockSize > MAX_ROWS)
    throw rangeErr(
      `at most ${MAX_ROWS} rows in all (numBlocks x blockSize; rows are int32)`,
      name,
      words(`${numBlocks} x ${blockSize}`),
    );
};
const elements = (spec: KvCacheSpec, name: string) => {
  const n = spec.numBlocks * spec.blockSize * spec.numKvHeads * Math.max(spec.headDim, spec.headDimV);
  if (n >= MAX_ELEMENTS)
    throw rangeErr(
      'fewer than 2^53 elements in k and in v (numBlocks x blockSize x numKvHeads x headDim)',
      name,
      words(`${n} elements`),
    );
};

/** `createKvCache`'s options, defaults filled in. */
export function validateKvCacheOptions(o: KvCacheOptions): KvCacheSpec {
  if (o === null || typeof o !== 'object')
    throw typeErr('an options object { numBlocks, blockSize, numKvHeads, headDim, headDimV?, dtype? }', 'options', o);
  checkKeys(o, CACHE_KEYS, 'options');
  const get = (key: string) => readKey(o, key, `options.${key}`);
  const numBlocks = intIn(get('numBlocks'), 'options.numBlocks', 1, MAX_ROWS);
  const blockSize = intIn(get('blockSize'), 'options.blockSize', 1, MAX_ROWS);
  dims(numBlocks, blockSize, 'options.blockSize');
  const numKvHeads = intIn(get('numKvHeads'), 'options.numKvHeads', 1, MAX_ROWS);
  const headDim = intIn(get('headDim'), 'options.headDim', 1, MAX_HEAD_DIM);
  const dv = get('headDimV');
  const headDimV = dv === undefined ? headDim : intIn(dv, 'options.headDimV', 1, MAX_HEAD_DIM);
  const dt = get('dtype') ?? 'float32';
  if (!DTYPES.includes(dt as DType))
    throw typeErr(`one of ${DTYPES.map((d) => `'${d}'`).join(', ')}`, 'options.dtype', dt);
  const spec = { numBlocks, blockSize, numKvHeads, headDim, headDimV, dtype: dt as DType };
  elements(spec, 'options');
  return spec;
}

/**
 * An engine's cache, read once: it must be one that this engine made (`owns`, the façade's record of its
 * createKvCache results) and not disposed. Its dims were validated when it was made.
 */
export function readKvCache(c: unknown, owns: (c: object) => boolean, engine: string): CacheView<KvCache> {
  if (c === null || typeof c !== 'object') throw typeErr('a KV cache (engine.createKvCache)', 'cache', c);
  if (!owns(c))
    throw typeErr(
      `a KV cache made by this ${engine} engine's createKvCache`,
      'cache',
      words("an object it did not make (another engine's cache?)"),
    );
  if (readKey(c, 'disposed', 'cache.disposed') === true)
    throw typeErr('a KV cache that is not disposed', 'cache', words('a disposed cache'));
  const get = (key: string) => readKey(c, key, `cache.${key}`) as number;
  const spec: KvCacheSpec = {
    numBlocks: get('numBlocks'),
    blockSize: get('blockSize'),
    numKvHeads: get('numKvHeads'),
    headDim: get('headDim'),
    headDimV: get('headDimV'),
    dtype: readKey(c, 'dtype', 'cache.dtype') as DType,
  };
  const k = readKey(c, 'k', 'cache.k') as DeviceTensor;
  const location = readKey(k, 'location', 'cache.k.location') as 'wasm' | 'cuda';
  return { spec, location, cache: c as KvCache };
}

const hostOnly = (t: unknown, name: string): Tensor => {
  const loc = t !== null && typeof t === 'object' ? (t as { location?: unknown }).location : undefined;
  if (loc === 'wasm' || loc === 'cuda')
    throw typeErr(`a host tensor (engine.download() the cache's tensors first)`, name, words(`a tensor on '${loc}'`));
  return readHostTensor(t as Tensor, name);
};

/** A cache's host contents (the reference's input): `k` `[numBlocks, blockSize, numKvHeads, headDim]`, `v` alike. */
export function readKvCacheContents(c: KvCacheContents): CacheView<{ k: Tensor; v: Tensor }> {
  if (c === null || typeof c !== 'object') throw typeErr("the cache's contents { k, v } (host tensors)", 'cache', c);
  const k = hostOnly(readKey(c, 'k', 'cache.k'), 'cache.k');
  const v = hostOnly(readKey(c, 'v', 'cache.v'), 'cache.v');
  const ks = [...k.shape],
    vs = [...v.shape];
  const what = (d: string) => `[numBlocks >= 1, blockSize >= 1, numKvHeads >= 1, ${d} from 1 to ${MAX_HEAD_DIM}]`;
  if (ks.length !== 4 || ks[0]! < 1 || ks[1]! < 1 || ks[2]! < 1 || ks[3]! < 1 || ks[3]! > MAX_HEAD_DIM)
    throw rangeErr(what('headDim'), 'cache.k.shape', ks);
  if (vs.length !== 4 || vs[3]! < 1 || vs[3]! > MAX_HEAD_DIM) throw rangeErr(what('headDimV'), 'cache.v.shape', vs);
  if (vs[0] !== ks[0] || vs[1] !== ks[1] || vs[2] !== ks[2])
    throw rangeErr(`[${ks.slice(0, 3).join(', ')}, headDimV] like cache.k`, 'cache.v.shape', vs);
  if (v.dtype !== k.dtype) throw typeErr(`dtype '${k.dtype}' like cache.k`, 'cache.v.dtype', v.dtype);
  dims(ks[0]!, ks[1]!, 'cache.k.shape');
  const spec = {
    numBlocks: ks[0]!,
    blockSize: ks[1]!,
    numKvHeads: ks[2]!,
    headDim: ks[3]!,
    headDimV: vs[3]!,
    dtype: k.dtype,
  };
  return { spec, location: 'cpu', cache: { k, v } };
}

/** A call's tensors are host tensors or tensors on the cache's side (the engine checks they are its own). */
function checkSide(t: AnyTensor, name: string, loc: CacheView<unknown>['location']): void {
  const l = t.location ?? 'cpu';
  if (l !== 'cpu' && l !== loc)
    throw typeErr(
      loc === 'cpu' ? 'a host tensor' : `a host tensor or one on '${loc}' like the cache`,
      `${name}.location`,
      l,
    );
}

/** kNew `[totalNew, numKvHeads, headDim]` and vNew `[totalNew, numKvHeads, headDimV]` in the cache's dtype. */
function checkNewRows(kIn: unknown, vIn: unknown, view: CacheView<unknown>, kName: string, vName: string) {
  const { spec } = view;
  const { t: kNew, shape: ks } = checkTensor(kIn as InputTensor, kName, 3);
  const { t: vNew, shape: vs } = checkTensor(vIn as InputTensor, vName, 3);
  checkSide(kNew, kName, view.location);
  checkSide(vNew, vName, view.location);
  if (kNew.dtype !== spec.dtype) throw typeErr(`dtype '${spec.dtype}' like the cache`, `${kName}.dtype`, kNew.dtype);
  if (vNew.dtype !== spec.dtype) throw typeErr(`dtype '${spec.dtype}' like the cache`, `${vName}.dtype`, vNew.dtype);
  if (ks[1] !== spec.numKvHeads || ks[2] !== spec.headDim)
    throw rangeErr(
      `[totalNew, numKvHeads = ${spec.numKvHeads}, headDim = ${spec.headDim}] like the cache`,
      `${kName}.shape`,
      ks,
    );
  if (ks[0]! > MAX_ROWS) throw rangeErr(`at most ${MAX_ROWS} rows (offsets are int32)`, `${kName}.shape`, ks);
  if (vs[0] !== ks[0] || vs[1] !== spec.numKvHeads || vs[2] !== spec.headDimV)
    throw rangeErr(
      `[totalNew = ${ks[0]}, numKvHeads = ${spec.numKvHeads}, headDimV = ${spec.headDimV}] like ${kName} and the cache`,
      `${vName}.shape`,
      vs,
    );
  return { kNew, vNew, totalNew: ks[0]! };
}

/** `writeKvCache(cache, kNew, vNew, { cacheSeqlens, blockTable, cuSeqlensNew })`: batch is `cuSeqlensNew.length - 1`. */
export function validateKvWrite<C>(
  view: CacheView<C>,
  kIn: InputTensor,
  vIn: InputTensor,
  options: KvCacheWriteOptions,
): KvWrite<AnyTensor, C> {
  const { kNew, vNew, totalNew } = checkNewRows(kIn, vIn, view, 'kNew', 'vNew');
  if (options === null || typeof options !== 'object')
    throw typeErr('an options object { cacheSeqlens, blockTable, cuSeqlensNew }', 'options', options);
  checkKeys(options, WRITE_KEYS, 'options');
  const get = (key: string) => readKey(options, key, `options.${key}`);
  const cuSeqlensNew = checkCuSeqlens(get('cuSeqlensNew'), 'options.cuSeqlensNew', totalNew, 'totalNew');
  const batch = cuSeqlensNew.length - 1;
  const layout = checkLayout(
    view.spec,
    batch,
    'options.cuSeqlensNew',
    get('cacheSeqlens'),
    get('blockTable'),
    cuSeqlensNew,
  );
  return { ...view.spec, cache: view.cache, kNew, vNew, cuSeqlensNew, batch, totalNew, ...layout };
}

const CALL_KEY_SET: ReadonlySet<string> = new Set(CALL_KEYS);
const OPTION_KEY_SET: ReadonlySet<string> = new Set(OPTION_KEYS);

/** Splits a call's options: the KV cache's own keys, and the attention options (for src/options.ts). */
function splitOptions(o: object) {
  const attention: Record<string, unknown> = {};
  for (const key of Object.keys(o)) {
    if (CALL_KEY_SET.has(key)) continue;
    // A known attention option needs no hint (and the edit distances cost more than the rest of the check).
    if (!OPTION_KEY_SET.has(key)) {
      const hint =
        key === 'cuSeqlensK'
          ? 'a KV cache call has no cuSeqlensK: its key lengths are cacheSeqlens plus the new rows'
          : nearest(key, CALL_KEYS) && `did you mean '${nearest(key, CALL_KEYS)}'?`;
      if (hint) throw new TypeError(`Expected a known option for options.${key} but received an unknown key; ${hint}`);
    }
    attention[key] = readKey(o, key, `options.${key}`);
  }
  // Read one by one (a decode step validates every call: no arrays of keys built per call).
  const kv = {
    cuSeqlensQ: readKey(o, 'cuSeqlensQ', 'options.cuSeqlensQ'),
    cacheSeqlens: readKey(o, 'cacheSeqlens', 'options.cacheSeqlens'),
    blockTable: readKey(o, 'blockTable', 'options.blockTable'),
    kNew: readKey(o, 'kNew', 'options.kNew'),
    vNew: readKey(o, 'vNew', 'options.vNew'),
    cuSeqlensNew: readKey(o, 'cuSeqlensNew', 'options.cuSeqlensNew'),
  } satisfies Record<(typeof CALL_KEYS)[number], unknown>;
  return { kv, attention };
}

/**
 * `attentionWithKvCache(q, cache, options)`: batch is `cuSeqlensQ.length - 1`; `cacheSeqlens` has `batch`
 * entries and `blockTable` `batch * maxBlocksPerSeq`. Without kNew/vNew, `n = 0` for every sequence.
 */
export function validateKvCall<C>(
  view: CacheView<C>,
  qIn: InputTensor,
  options: KvCacheCallOptions,
): KvProblem<AnyTensor, C> {
  const { spec } = view;
  const { t: q, shape: qs } = checkTensor(qIn, 'q', 3);
  checkSide(q, 'q', view.location);
  if (q.dtype !== spec.dtype) throw typeErr(`dtype '${spec.dtype}' like the cache`, 'q.dtype', q.dtype);
  const [totalQ, numHeads, headDim] = qs as [number, number, number];
  if (numHeads < 1) throw rangeErr('numHeads >= 1', 'q.shape', qs);
  if (numHeads % spec.numKvHeads !== 0)
    throw rangeErr(
      `numHeads (${numHeads}) to be a multiple of the cache's numKvHeads (${spec.numKvHeads})`,
      'q.shape',
      qs,
    );
  if (headDim !== spec.headDim) throw rangeErr(`headDim = ${spec.headDim} like the cache`, 'q.shape', qs);
  if (totalQ > MAX_ROWS) throw rangeErr(`at most ${MAX_ROWS} rows (offsets are int32)`, 'q.shape', qs);
  if (options === null || typeof options !== 'object')
    throw typeErr('an options object with cuSeqlensQ, cacheSeqlens and blockTable', 'options', options);
  const { kv, attention } = splitOptions(options);
  const cuSeqlensQ = checkCuSeqlens(kv.cuSeqlensQ, 'options.cuSeqlensQ', totalQ, 'totalQ');
  const batch = cuSeqlensQ.length - 1;
  const has = (x: unknown) => x !== undefined && x !== null;
  if (has(kv.kNew) !== has(kv.vNew))
    throw typeErr(
      'kNew and vNew together (both or neither)',
      has(kv.kNew) ? 'options.vNew' : 'options.kNew',
      has(kv.kNew) ? kv.vNew : kv.kNew,
    );
  let rows: { kNew: AnyTensor | null; vNew: AnyTensor | null; totalNew: number } = {
    kNew: null,
    vNew: null,
    totalNew: 0,
  };
  if (has(kv.kNew)) rows = checkNewRows(kv.kNew, kv.vNew, view, 'options.kNew', 'options.vNew');
  let cuSeqlensNew: Int32Array;
  if (kv.cuSeqlensNew === undefined) {
    if (rows.kNew && rows.totalNew !== totalQ)
      throw rangeErr(`totalQ = ${totalQ} rows (cuSeqlensNew defaults to cuSeqlensQ)`, 'options.kNew.shape', [
        ...rows.kNew.shape,
      ]);
    cuSeqlensNew = rows.kNew ? cuSeqlensQ : new Int32Array(batch + 1);
  } else {
    const total = rows.kNew ? 'totalNew' : 'totalNew (no kNew/vNew)';
    cuSeqlensNew = checkCuSeqlens(kv.cuSeqlensNew, 'options.cuSeqlensNew', rows.totalNew, total);
    if (cuSeqlensNew.length !== batch + 1)
      throw rangeErr(`the same length as options.cuSeqlensQ (${batch + 1})`, 'options.cuSeqlensNew', cuSeqlensNew);
  }
  const layout = checkLayout(spec, batch, 'options.cuSeqlensQ', kv.cacheSeqlens, kv.blockTable, cuSeqlensNew);
  // The attention options, as attentionVarlen checks them on the same call: windows and ALiBi are bounded by
  // the longest query plus the longest sequence's Lk keys.
  const maxSeqlenQ = maxLen(cuSeqlensQ);
  let o: ReturnType<typeof checkVarlenOptions>;
  try {
    o = checkVarlenOptions(
      attention,
      q,
      spec.dtype,
      totalQ,
      numHeads,
      spec.headDim,
      spec.headDimV,
      maxSeqlenQ + layout.maxSeqlenK,
    );
  } catch (e) {
    // An unknown key: list this call's keys, not attentionVarlen's.
    const tail = /cuSeqlensQ, cuSeqlensK$/;
    if (e instanceof TypeError && tail.test(e.message))
      throw new TypeError(e.message.replace(tail, CALL_KEYS.join(', ')));
    throw e;
  }
  // Spelled out, not spread: the spreads of ~40 properties were half of this function's time (a decode
  // step validates every call).
  return {
    dtype: spec.dtype,
    q,
    cuSeqlensQ,
    batch,
    totalQ,
    maxSeqlenQ,
    maxSeqlenK: layout.maxSeqlenK,
    numHeads,
    numKvHeads: spec.numKvHeads,
    headDim: spec.headDim,
    headDimV: spec.headDimV,
    windowLeft: o.windowLeft,
    windowRight: o.windowRight,
    softmaxScale: o.softmaxScale,
    softcap: o.softcap,
    alibiSlopes: o.alibiSlopes,
    sinks: o.sinks,
    returnLse: o.returnLse,
    precision: o.precision,
    outShape: o.outShape,
    lseShape: o.lseShape,
    fixedSeqlenQ: 0,
    outInto: o.outInto,
    lseInto: o.lseInto,
    numBlocks: spec.numBlocks,
    blockSize: spec.blockSize,
    cache: view.cache,
    kNew: rows.kNew,
    vNew: rows.vNew,
    totalNew: rows.totalNew,
    cuSeqlensNew,
    cacheSeqlens: layout.cacheSeqlens,
    seqlensK: layout.seqlensK,
    blockTable: layout.blockTable,
    maxBlocksPerSeq: layout.maxBlocksPerSeq,
    maxSeqlenNew: layout.maxSeqlenNew,
  };
}
