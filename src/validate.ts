/**
 * Every rule of the contract's "Bad input" (docs/semantics.md), checked once, before any engine sees
 * the call, so all engines reject bad input with the same words (src/errors.ts).
 */
import { checkKeys, rangeErr, readKey, typeErr, words } from './errors.js';
import { checkTensor, isView } from './inputs.js';
import type { Problem } from './problem.js';
import type {
  AnyTensor,
  AttentionOptions,
  DType,
  HostData,
  InputTensor,
  Precision,
  Tensor,
  TensorInput,
  VarlenOptions,
} from './types.js';

export { readHostTensor } from './inputs.js';

export const MAX_HEAD_DIM = 256;
/** Rows of q or k: cuSeqlens are int32. */
const MAX_ROWS = 2 ** 31 - 1;
/** float32 options stay far from overflow after the kernels' own factors (log2 e, distances). */
const F32_SAFE = 2 ** 126;

export const OPTION_KEYS = [
  'causal',
  'window',
  'softmaxScale',
  'softcap',
  'alibiSlopes',
  'sinks',
  'returnLse',
  'precision',
  'out',
  'lse',
] as const;
const VARLEN_KEYS = [...OPTION_KEYS, 'cuSeqlensQ', 'cuSeqlensK'] as const;

/** Offsets of packed sequences (cuSeqlensQ, cuSeqlensK, cuSeqlensNew), copied at the call. */
export function checkCuSeqlens(cu: unknown, name: string, total: number, totalName: string): Int32Array {
  if (!isView(cu, Int32Array)) throw typeErr('an Int32Array', name, cu);
  // A copy: the engines read the offsets after the call returned (a queued call), the caller may reuse them.
  const c = Int32Array.from(cu as Int32Array);
  if (c.length < 1) throw rangeErr('length batch + 1 >= 1', name, c);
  if (c[0] !== 0) throw rangeErr(`${name}[0] = 0`, name, words(`${name}[0] = ${c[0]}`));
  for (let i = 1; i < c.length; i++)
    if (c[i]! < c[i - 1]!)
      throw rangeErr(
        'non-decreasing offsets',
        name,
        words(`${name}[${i}] = ${c[i]} < ${name}[${i - 1}] = ${c[i - 1]}`),
      );
  if (c[c.length - 1] !== total)
    throw rangeErr(
      `last offset = ${totalName} = ${total}`,
      name,
      words(`${name}[${c.length - 1}] = ${c[c.length - 1]}`),
    );
  return c;
}

function checkHeads(qs: number[], ks: number[], vs: number[], lastAxis: number) {
  const numHeads = qs[lastAxis - 1]!,
    numKvHeads = ks[lastAxis - 1]!;
  const headDim = qs[lastAxis]!,
    headDimV = vs[lastAxis]!;
  if (numHeads < 1) throw rangeErr('numHeads >= 1', 'q.shape', qs);
  if (numKvHeads < 1) throw rangeErr('numKvHeads >= 1', 'k.shape', ks);
  if (vs[lastAxis - 1] !== numKvHeads)
    throw rangeErr(`v to have numKvHeads = ${numKvHeads} heads like k`, 'v.shape', vs);
  if (numHeads % numKvHeads !== 0)
    throw rangeErr(
      `numHeads (${numHeads}) to be a multiple of numKvHeads`,
      'k.shape',
      words(`numKvHeads = ${numKvHeads}`),
    );
  if (headDim < 1 || headDim > MAX_HEAD_DIM) throw rangeErr(`headDim from 1 to ${MAX_HEAD_DIM}`, 'q.shape', qs);
  if (ks[lastAxis] !== headDim) throw rangeErr(`k's headDim to equal q's (${headDim})`, 'k.shape', ks);
  if (headDimV < 1 || headDimV > MAX_HEAD_DIM) throw rangeErr(`headDimV from 1 to ${MAX_HEAD_DIM}`, 'v.shape', vs);
  return { numHeads, numKvHeads, headDim, headDimV };
}

const num = (x: unknown, name: string, what: string): number => {
  if (typeof x !== 'number') throw typeErr(what, name, x);
  return x;
};

/**
 * The options, each read once. `span` (the longest query plus the longest key sequence) bounds what
 * a window width or an ALiBi distance can mean: a width of `span` or more keeps every key, so it is
 * stored as -1 (unbounded), which keeps every engine's arithmetic in range whatever width was given.
 */
function checkOptions(o: AttentionOptions, numHeads: number, headDim: number, span: number, varlen: boolean) {
  if (o === null || typeof o !== 'object') throw typeErr('an options object', 'options', o);
  checkKeys(o, varlen ? VARLEN_KEYS : OPTION_KEYS, 'options', (key) =>
    !varlen && (key === 'cuSeqlensQ' || key === 'cuSeqlensK')
      ? "packed sequences are attentionVarlen's (attention takes [batch, seqlen, heads, dim])"
      : null,
  );
  const get = (key: string) => readKey(o, key, `options.${key}`);
  const causal = get('causal') ?? false;
  if (typeof causal !== 'boolean') throw typeErr('a boolean', 'options.causal', causal);
  const returnLse = get('returnLse') ?? false;
  if (typeof returnLse !== 'boolean') throw typeErr('a boolean', 'options.returnLse', returnLse);
  const precision = get('precision') ?? 'float32';
  if (precision !== 'float32' && precision !== 'float16')
    throw typeErr("'float32' (the default) or 'float16'", 'options.precision', precision);
  const win = get('window') ?? [-1, -1];
  if (!Array.isArray(win) || win.length !== 2) throw typeErr('an array [left, right]', 'options.window', win);
  const window = [...(win as unknown[])];
  for (const w of window) {
    num(w, 'options.window', 'integers >= -1 (-1 = unbounded)');
    if (!Number.isSafeInteger(w) || (w as number) < -1)
      throw rangeErr('integers >= -1 (-1 = unbounded)', 'options.window', window);
  }
  const width = (w: number) => (w >= span ? -1 : w);
  const windowLeft = width(window[0] as number);
  let windowRight = width(window[1] as number);
  if (causal) {
    if ((window[1] as number) > 0)
      throw rangeErr('window[1] to be -1 or 0 when causal is true', 'options.window', window);
    windowRight = 0;
  }
  const scale = get('softmaxScale');
  const softmaxScale = scale === undefined ? 1 / Math.sqrt(headDim) : num(scale, 'options.softmaxScale', 'a number');
  if (!(Math.abs(softmaxScale) <= F32_SAFE))
    throw rangeErr(`a finite number of magnitude at most 2^126 (float32 range)`, 'options.softmaxScale', softmaxScale);
  const cap = get('softcap');
  const softcap = cap === undefined ? 0 : num(cap, 'options.softcap', 'a number');
  if (!(softcap === 0 || (softcap >= 1 / F32_SAFE && softcap <= F32_SAFE)))
    throw rangeErr('0 (off) or a number from 2^-126 to 2^126 (float32 range)', 'options.softcap', softcap);
  let alibiSlopes: Float32Array | null = null;
  const a = get('alibiSlopes');
  if (a !== undefined && a !== null) {
    if (!isView(a, Float32Array) && !Array.isArray(a))
      throw typeErr('a Float32Array or number[]', 'options.alibiSlopes', a);
    const slopes = Array.from(a as ArrayLike<unknown>);
    if (slopes.length !== numHeads) throw rangeErr(`numHeads = ${numHeads} slopes`, 'options.alibiSlopes', a);
    // slope * distance must stay finite in float32 for every distance a call has.
    const most = F32_SAFE / Math.max(1, span);
    for (const x of slopes) {
      num(x, 'options.alibiSlopes', 'numbers');
      if (!(Math.abs(x as number) <= most))
        throw rangeErr(
          `finite slopes of magnitude at most ${most.toPrecision(3)} (2^126 / the longest distance)`,
          'options.alibiSlopes',
          a,
        );
    }
    alibiSlopes = Float32Array.from(slopes as number[]);
  }
  return {
    windowLeft,
    windowRight,
    softmaxScale,
    softcap,
    alibiSlopes,
    sinks: checkSinks(get('sinks'), numHeads),
    returnLse,
    precision: precision as Precision,
  };
}

/** options.sinks: `[numHeads]` finite logits of float32 range. */
function checkSinks(s: unknown, numHeads: number): Float32Array | null {
  if (s === undefined || s === null) return null;
  if (!isView(s, Float32Array) && !Array.isArray(s)) throw typeErr('a Float32Array or number[]', 'options.sinks', s);
  const logits = Array.from(s as ArrayLike<unknown>);
  if (logits.length !== numHeads) throw rangeErr(`numHeads = ${numHeads} sink logits`, 'options.sinks', s);
  for (const x of logits) {
    num(x, 'options.sinks', 'numbers');
    if (!(Math.abs(x as number) <= F32_SAFE))
      throw rangeErr('finite logits of magnitude at most 2^126', 'options.sinks', s);
  }
  return Float32Array.from(logits as number[]);
}

function checkSameDtype(q: AnyTensor, k: AnyTensor, v: AnyTensor): DType {
  if (k.dtype !== q.dtype) throw typeErr(`dtype '${q.dtype}' like q`, 'k.dtype', k.dtype);
  if (v.dtype !== q.dtype) throw typeErr(`dtype '${q.dtype}' like q`, 'v.dtype', v.dtype);
  // Host tensors and tensors resident in the wasm engine's memory may mix (a KV cache uploaded once, q
  // from the host); cuda tensors may not mix with host ones.
  const loc = q.location ?? 'cpu';
  const side = (l: string) => (l === 'wasm' ? 'cpu' : l);
  for (const [t, n] of [
    [k, 'k'],
    [v, 'v'],
  ] as const)
    if (side(t.location ?? 'cpu') !== side(loc))
      throw typeErr(`a tensor on '${loc}' like q`, `${n}.location`, t.location ?? 'cpu');
  return q.dtype;
}

function maxLen(cu: Int32Array): number {
  let m = 0;
  for (let i = 1; i < cu.length; i++) m = Math.max(m, cu[i]! - cu[i - 1]!);
  return m;
}

/** The caller's objects behind host `outInto`/`lseInto` (read once into fresh tensors): what a call returns. */
const callers = new WeakMap<object, AnyTensor>();

/** The tensor a call returns for its `outInto`/`lseInto`: the caller's own object (`r.out === options.out`). */
export const callerTensor = (t: AnyTensor): AnyTensor => callers.get(t) ?? t;

/**
 * options.out / options.lse: tensors to write the results into, on q's side. For device q (cuda), device
 * tensors of the call's engine (checked against the call's shapes and dtype here, as the engine's own by the
 * engine). For host q (and wasm-resident q, whose results are host tensors), host tensors `{ data, shape,
 * dtype }` with data of the dtype's own array class and length, read once into a fresh tensor whose `data`
 * is the caller's array (callerTensor maps it back). `lse` implies returnLse.
 */
function checkInto(o: AttentionOptions, q: AnyTensor, dtype: DType, outShape: number[], lseShape: number[]) {
  const onDevice = q.location === 'cuda';
  const into = (key: 'out' | 'lse', want: DType, shape: number[]): AnyTensor | null => {
    const name = `options.${key}`;
    const t = readKey(o, key, name) as AnyTensor | undefined | null;
    if (t === undefined || t === null) return null;
    const device = 'a cuda device tensor of this engine (q is on cuda)';
    const host = 'a host tensor { data, shape, dtype } (q is on the host, so are the results)';
    if (typeof t !== 'object') throw typeErr(onDevice ? device : host, name, t);
    const loc = readKey(t, 'location', `${name}.location`) ?? 'cpu';
    if (onDevice && loc !== 'cuda')
      throw typeErr(device, name, words(loc === 'cpu' ? 'a host tensor' : `a tensor on '${String(loc)}'`));
    if (!onDevice && loc !== 'cpu') throw typeErr(host, name, words(`a tensor on '${String(loc)}'`));
    const dt = readKey(t, 'dtype', `${name}.dtype`);
    if (dt !== want) throw typeErr(`dtype '${want}'`, `${name}.dtype`, dt);
    const s = readKey(t, 'shape', `${name}.shape`);
    const dims = Array.isArray(s) ? [...(s as unknown[])] : s;
    if (!Array.isArray(dims) || dims.length !== shape.length || dims.some((x, i) => x !== shape[i]))
      throw rangeErr(`shape [${shape.join(', ')}]`, `${name}.shape`, dims);
    if (onDevice) return t;
    const data = readKey(t, 'data', `${name}.data`);
    const C = want === 'float32' ? Float32Array : Uint16Array;
    if (!isView(data, C as { prototype: HostData; name: string }))
      throw typeErr(`a ${C.name} (dtype '${want}')`, `${name}.data`, data);
    const size = shape.reduce((a, b) => a * b, 1);
    if ((data as HostData).length !== size)
      throw rangeErr(
        `${size} elements (shape [${shape.join(', ')}])`,
        `${name}.data`,
        words(`${(data as HostData).length} elements`),
      );
    const r: Tensor = { data: data as HostData, shape: Object.freeze(dims as number[]), dtype: want, location: 'cpu' };
    callers.set(r, t);
    return r;
  };
  return { outInto: into('out', dtype, outShape), lseInto: into('lse', 'float32', lseShape) };
}

const rows = (n: number, name: string, shape: number[], what: string) => {
  if (n > MAX_ROWS) throw rangeErr(`at most ${MAX_ROWS} ${what} (offsets are int32)`, name, shape);
};

/** Validates a packed call and returns its Problem (host inputs give a Problem of host tensors). */
export function validateVarlen(q: TensorInput, k: TensorInput, v: TensorInput, options: VarlenOptions): Problem<Tensor>;
export function validateVarlen(
  q: InputTensor,
  k: InputTensor,
  v: InputTensor,
  options: VarlenOptions,
): Problem<AnyTensor>;
export function validateVarlen(
  qIn: InputTensor,
  kIn: InputTensor,
  vIn: InputTensor,
  options: VarlenOptions,
): Problem<AnyTensor> {
  const { t: q, shape: qs } = checkTensor(qIn, 'q', 3);
  const { t: k, shape: ks } = checkTensor(kIn, 'k', 3);
  const { t: v, shape: vs } = checkTensor(vIn, 'v', 3);
  const dtype = checkSameDtype(q, k, v);
  if (vs[0] !== ks[0]) throw rangeErr(`v to have totalK = ${ks[0]} rows like k`, 'v.shape', vs);
  rows(qs[0]!, 'q.shape', qs, 'rows');
  rows(ks[0]!, 'k.shape', ks, 'rows');
  const heads = checkHeads(qs, ks, vs, 2);
  if (options === null || typeof options !== 'object')
    throw typeErr('an options object with cuSeqlensQ and cuSeqlensK', 'options', options);
  const cuSeqlensQ = checkCuSeqlens(
    readKey(options, 'cuSeqlensQ', 'options.cuSeqlensQ'),
    'options.cuSeqlensQ',
    qs[0]!,
    'totalQ',
  );
  const cuSeqlensK = checkCuSeqlens(
    readKey(options, 'cuSeqlensK', 'options.cuSeqlensK'),
    'options.cuSeqlensK',
    ks[0]!,
    'totalK',
  );
  if (cuSeqlensK.length !== cuSeqlensQ.length)
    throw rangeErr(`the same length as options.cuSeqlensQ (${cuSeqlensQ.length})`, 'options.cuSeqlensK', cuSeqlensK);
  const maxSeqlenQ = maxLen(cuSeqlensQ),
    maxSeqlenK = maxLen(cuSeqlensK);
  const opts = checkOptions(options, heads.numHeads, heads.headDim, maxSeqlenQ + maxSeqlenK, true);
  const outShape = [qs[0]!, heads.numHeads, heads.headDimV],
    lseShape = [heads.numHeads, qs[0]!];
  const into = checkInto(options, q, dtype, outShape, lseShape);
  return {
    dtype,
    q,
    k,
    v,
    cuSeqlensQ,
    cuSeqlensK,
    batch: cuSeqlensQ.length - 1,
    totalQ: qs[0]!,
    totalK: ks[0]!,
    maxSeqlenQ,
    maxSeqlenK,
    ...heads,
    ...opts,
    returnLse: opts.returnLse || into.lseInto !== null,
    ...into,
    outShape,
    lseShape,
    fixedSeqlenQ: 0,
  };
}

/** Validates a fixed-length call ([batch, seqlen, heads, dim]) and returns its packed Problem. */
export function validateFixed(
  q: TensorInput,
  k: TensorInput,
  v: TensorInput,
  options?: AttentionOptions,
): Problem<Tensor> & { seqlenQ: number };
export function validateFixed(
  q: InputTensor,
  k: InputTensor,
  v: InputTensor,
  options?: AttentionOptions,
): Problem<AnyTensor> & { seqlenQ: number };
export function validateFixed(
  qIn: InputTensor,
  kIn: InputTensor,
  vIn: InputTensor,
  options: AttentionOptions = {},
): Problem<AnyTensor> & { seqlenQ: number } {
  const { t: q, shape: qs } = checkTensor(qIn, 'q', 4);
  const { t: k, shape: ks } = checkTensor(kIn, 'k', 4);
  const { t: v, shape: vs } = checkTensor(vIn, 'v', 4);
  const dtype = checkSameDtype(q, k, v);
  const batch = qs[0]!,
    seqlenQ = qs[1]!,
    seqlenK = ks[1]!;
  if (ks[0] !== batch) throw rangeErr(`k to have batch = ${batch} like q`, 'k.shape', ks);
  if (vs[0] !== batch) throw rangeErr(`v to have batch = ${batch} like q`, 'v.shape', vs);
  if (vs[1] !== seqlenK) throw rangeErr(`v to have seqlenK = ${seqlenK} like k`, 'v.shape', vs);
  rows(batch, 'q.shape', qs, 'sequences (batch)');
  rows(batch * seqlenQ, 'q.shape', qs, 'rows in all (batch x seqlenQ)');
  rows(batch * seqlenK, 'k.shape', ks, 'rows in all (batch x seqlenK)');
  const heads = checkHeads(qs, ks, vs, 3);
  const opts = checkOptions(options ?? {}, heads.numHeads, heads.headDim, seqlenQ + seqlenK, false);
  const outShape = [batch, seqlenQ, heads.numHeads, heads.headDimV],
    lseShape = [batch, heads.numHeads, seqlenQ];
  const into = checkInto(options ?? {}, q, dtype, outShape, lseShape);
  const cuSeqlensQ = new Int32Array(batch + 1),
    cuSeqlensK = new Int32Array(batch + 1);
  for (let b = 0; b <= batch; b++) {
    cuSeqlensQ[b] = b * seqlenQ;
    cuSeqlensK[b] = b * seqlenK;
  }
  return {
    dtype,
    q,
    k,
    v,
    cuSeqlensQ,
    cuSeqlensK,
    batch,
    seqlenQ,
    outShape,
    lseShape,
    fixedSeqlenQ: seqlenQ,
    totalQ: batch * seqlenQ,
    totalK: batch * seqlenK,
    maxSeqlenQ: batch ? seqlenQ : 0,
    maxSeqlenK: batch ? seqlenK : 0,
    ...heads,
    ...opts,
    returnLse: opts.returnLse || into.lseInto !== null,
    ...into,
  };
}
