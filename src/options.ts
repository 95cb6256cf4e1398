/**
 * The options of an attention call (docs/semantics.md, "The function" and "Bad input"), each read once:
 * causal, window, scale, softcap, ALiBi, sinks, returnLse, precision, and the caller's out / lse.
 */
import { checkKeys, rangeErr, readKey, typeErr, words } from './errors.js';
import { isView } from './inputs.js';
import type { AnyTensor, AttentionOptions, DType, HostData, Precision, Tensor } from './types.js';

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
export const VARLEN_KEYS = [...OPTION_KEYS, 'cuSeqlensQ', 'cuSeqlensK'] as const;

const num = (x: unknown, name: string, what: string): number => {
  if (typeof x !== 'number') throw typeErr(what, name, x);
  return x;
};

/**
 * The options, each read once. `span` (the longest query plus the longest key sequence) bounds what
 * a window width or an ALiBi distance can mean: a width of `span` or more keeps every key, so it is
 * stored as -1 (unbounded), which keeps every engine's arithmetic in range whatever width was given.
 */
export function checkOptions(o: AttentionOptions, numHeads: number, headDim: number, span: number, varlen: boolean) {
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
export function checkInto(o: AttentionOptions, q: AnyTensor, dtype: DType, outShape: number[], lseShape: number[]) {
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

/**
 * The options of a packed call (attentionVarlen's, and a KV cache call's attention options) once q, the
 * heads and the longest query plus key span are known: the attention options, then out / lse against the
 * call's result shapes.
 */
export function checkVarlenOptions(
  options: object,
  q: AnyTensor,
  dtype: DType,
  totalQ: number,
  numHeads: number,
  headDim: number,
  headDimV: number,
  span: number,
) {
  const opts = checkOptions(options as AttentionOptions, numHeads, headDim, span, true);
  const outShape = [totalQ, numHeads, headDimV],
    lseShape = [numHeads, totalQ];
  const into = checkInto(options as AttentionOptions, q, dtype, outShape, lseShape);
  return {
    windowLeft: opts.windowLeft,
    windowRight: opts.windowRight,
    softmaxScale: opts.softmaxScale,
    softcap: opts.softcap,
    alibiSlopes: opts.alibiSlopes,
    sinks: opts.sinks,
    precision: opts.precision,
    returnLse: opts.returnLse || into.lseInto !== null,
    outInto: into.outInto,
    lseInto: into.lseInto,
    outShape,
    lseShape,
  };
}
