/**
 * Every rule of SEMANTICS.md's "Bad input", checked once, before any engine sees the call, so
 * all engines reject bad input with the same words: "Expected <what> for <name> but received <actual>".
 */
import type {
  AnyTensor, AttentionOptions, DType, DeviceTensor, Float16ArrayLike, HostData, InputTensor, OrtTensorLike, Tensor, TensorInput,
  TensorLike, VarlenOptions,
} from './types.js';
import type { Problem } from './problem.js';

const DTYPES: readonly DType[] = ['float32', 'float16', 'bfloat16'];
export const MAX_HEAD_DIM = 256;

/** A "received" value already in words (printed without quotes). */
class Words { constructor(readonly text: string) {} }
const words = (t: string) => new Words(t);

function show(x: unknown): string {
  if (x instanceof Words) return x.text;
  if (x === null) return 'null';
  if (x === undefined) return 'undefined';
  if (Array.isArray(x)) return x.length <= 8 ? `[${x.map(show).join(', ')}]` : `an array of length ${x.length}`;
  if (ArrayBuffer.isView(x)) return `${x.constructor.name}(${(x as unknown as ArrayLike<number>).length})`;
  if (typeof x === 'string') return JSON.stringify(x);
  if (typeof x === 'object') return (x as object).constructor?.name ? `a ${(x as object).constructor.name}` : 'an object';
  return String(x);
}

const typeErr = (what: string, name: string, got: unknown) =>
  new TypeError(`Expected ${what} for ${name} but received ${show(got)}`);
const rangeErr = (what: string, name: string, got: unknown) =>
  new RangeError(`Expected ${what} for ${name} but received ${show(got)}`);

const isInt = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x);

const DTYPE_WORDS = DTYPES.map((d) => `'${d}'`).join(', ');

const isFloat16Array = (x: unknown): x is Float16ArrayLike =>
  ArrayBuffer.isView(x) && Object.prototype.toString.call(x) === '[object Float16Array]';

/** The form of an onnxruntime `Tensor`: `type` and `dims` (and no `shape`). */
const isOrtTensor = (t: object): t is OrtTensorLike =>
  !('shape' in t) && 'dims' in t && typeof (t as { type?: unknown }).type === 'string';

/**
 * A host tensor in any accepted form (ours with or without `dtype`, a Float16Array, an onnxruntime
 * Tensor), read once into the one form engines see: `{ data: Float32Array | Uint16Array, shape, dtype }`.
 * The shape and the data view are taken now, so a caller who reuses the object later changes nothing.
 */
export function readHostTensor(t: TensorInput, name: string): Tensor {
  if (t === null || typeof t !== 'object') throw typeErr('a tensor { data, shape, dtype? }', name, t);
  let shape: unknown, dtype: unknown, data: unknown;
  if (isOrtTensor(t)) {
    const loc = t.location ?? 'cpu';
    if (loc !== 'cpu' && loc !== 'cpu-pinned')
      throw typeErr("an onnxruntime Tensor on the CPU (location 'cpu'); bring it there with `await tensor.getData()`", `${name}.location`, loc);
    if (t.type !== 'float32' && t.type !== 'float16') throw typeErr("an onnxruntime Tensor of type 'float32' or 'float16'", `${name}.type`, t.type);
    shape = Array.isArray(t.dims) ? [...t.dims] : t.dims;
    dtype = t.type;
    data = t.data;
    if (!Array.isArray(shape)) throw typeErr('an array of integers', `${name}.dims`, shape);
  } else {
    shape = (t as TensorLike).shape;
    if (!Array.isArray(shape)) throw typeErr('an array of integers', `${name}.shape`, shape);
    shape = [...shape];
    dtype = (t as TensorLike).dtype;
    data = (t as TensorLike).data;
  }
  if (dtype !== undefined && !DTYPES.includes(dtype as DType)) throw typeErr(`one of ${DTYPE_WORDS}`, `${name}.dtype`, dtype);
  let host: HostData;
  if (data instanceof Float32Array) {
    if (dtype !== undefined && dtype !== 'float32')
      throw typeErr(`a Uint16Array holding ${dtype as string} bits`, `${name}.data`, data);
    host = data;
    dtype = 'float32';
  } else if (isFloat16Array(data)) {
    if (dtype !== undefined && dtype !== 'float16') throw typeErr(`dtype 'float16' for a Float16Array`, `${name}.dtype`, dtype);
    host = new Uint16Array(data.buffer, data.byteOffset, data.length);
    dtype = 'float16';
  } else if (data instanceof Uint16Array) {
    if (dtype === undefined) throw typeErr("dtype 'float16' or 'bfloat16' (a Uint16Array holds half-precision bits)", `${name}.dtype`, dtype);
    if (dtype === 'float32') throw typeErr("a Float32Array (dtype 'float32')", `${name}.data`, data);
    host = data;
  } else {
    throw typeErr(`a Float32Array, Float16Array or Uint16Array${dtype ? ` for dtype '${dtype as string}'` : ''}`, `${name}.data`, data);
  }
  const dims = shape as unknown[];
  for (const s of dims) if (!isInt(s) || s < 0) throw rangeErr('non-negative integer sizes', `${name}.shape`, dims);
  const size = (dims as number[]).reduce((a, b) => a * b, 1);
  if (host.length !== size)
    throw rangeErr(`${size} elements (shape [${dims.join(', ')}])`, `${name}.data`, words(`${host.length} elements`));
  return { data: host, shape: Object.freeze(dims as number[]), dtype: dtype as DType, location: 'cpu' };
}

/** Checks one input: host tensors are read into the engines' form; tensors an engine keeps pass as they are. */
function checkTensor(t: InputTensor, name: string, rank: number): { t: AnyTensor; shape: number[] } {
  if (t === null || typeof t !== 'object') throw typeErr('a tensor { data, shape, dtype? }', name, t);
  const loc = (t as { location?: unknown }).location;
  let out: AnyTensor;
  if (loc === 'cuda' || loc === 'wasm') {
    const d = t as DeviceTensor;
    if (!Array.isArray(d.shape)) throw typeErr('an array of integers', `${name}.shape`, d.shape);
    for (const s of d.shape) if (!isInt(s) || s < 0) throw rangeErr('non-negative integer sizes', `${name}.shape`, d.shape);
    if (!DTYPES.includes(d.dtype)) throw typeErr(`one of ${DTYPE_WORDS}`, `${name}.dtype`, d.dtype);
    out = d;
  } else {
    out = readHostTensor(t as TensorInput, name);
  }
  const shape = [...out.shape];
  if (shape.length !== rank) throw rangeErr(`a shape of rank ${rank}`, `${name}.shape`, shape);
  return { t: out, shape };
}

function checkCuSeqlens(cu: unknown, name: string, total: number, totalName: string): Int32Array {
  if (!(cu instanceof Int32Array)) throw typeErr('an Int32Array', name, cu);
  if (cu.length < 1) throw rangeErr('length batch + 1 >= 1', name, cu);
  if (cu[0] !== 0) throw rangeErr(`${name}[0] = 0`, name, words(`${name}[0] = ${cu[0]}`));
  for (let i = 1; i < cu.length; i++)
    if (cu[i]! < cu[i - 1]!) throw rangeErr('non-decreasing offsets', name, words(`${name}[${i}] = ${cu[i]} < ${name}[${i - 1}] = ${cu[i - 1]}`));
  if (cu[cu.length - 1] !== total)
    throw rangeErr(`last offset = ${totalName} = ${total}`, name, words(`${name}[${cu.length - 1}] = ${cu[cu.length - 1]}`));
  return cu;
}

interface Dims {
  totalQ: number; totalK: number; numHeads: number; numKvHeads: number; headDim: number; headDimV: number;
}

function checkHeads(qs: number[], ks: number[], vs: number[], lastAxis: number): Omit<Dims, 'totalQ' | 'totalK'> {
  const numHeads = qs[lastAxis - 1]!, numKvHeads = ks[lastAxis - 1]!;
  const headDim = qs[lastAxis]!, headDimV = vs[lastAxis]!;
  if (numHeads < 1) throw rangeErr('numHeads >= 1', 'q.shape', qs);
  if (numKvHeads < 1) throw rangeErr('numKvHeads >= 1', 'k.shape', ks);
  if (vs[lastAxis - 1] !== numKvHeads) throw rangeErr(`v to have numKvHeads = ${numKvHeads} heads like k`, 'v.shape', vs);
  if (numHeads % numKvHeads !== 0)
    throw rangeErr(`numHeads (${numHeads}) to be a multiple of numKvHeads`, 'k.shape', words(`numKvHeads = ${numKvHeads}`));
  if (headDim < 1 || headDim > MAX_HEAD_DIM) throw rangeErr(`headDim from 1 to ${MAX_HEAD_DIM}`, 'q.shape', qs);
  if (ks[lastAxis] !== headDim) throw rangeErr(`k's headDim to equal q's (${headDim})`, 'k.shape', ks);
  if (headDimV < 1 || headDimV > MAX_HEAD_DIM) throw rangeErr(`headDimV from 1 to ${MAX_HEAD_DIM}`, 'v.shape', vs);
  return { numHeads, numKvHeads, headDim, headDimV };
}

function checkOptions(o: AttentionOptions, numHeads: number, headDim: number) {
  if (o === null || typeof o !== 'object') throw typeErr('an options object', 'options', o);
  const causal = o.causal === undefined ? false : o.causal;
  if (typeof causal !== 'boolean') throw typeErr('a boolean', 'options.causal', causal);
  const returnLse = o.returnLse === undefined ? false : o.returnLse;
  if (typeof returnLse !== 'boolean') throw typeErr('a boolean', 'options.returnLse', returnLse);
  const window = o.window === undefined ? [-1, -1] : o.window;
  if (!Array.isArray(window) || window.length !== 2) throw typeErr('an array [left, right]', 'options.window', window);
  for (const w of window)
    if (!isInt(w) || w < -1) throw rangeErr('integers >= -1 (-1 = unbounded)', 'options.window', window);
  let [windowLeft, windowRight] = window as [number, number];
  if (causal) {
    if (windowRight > 0) throw rangeErr('window[1] to be -1 or 0 when causal is true', 'options.window', window);
    windowRight = 0;
  }
  const softmaxScale = o.softmaxScale === undefined ? 1 / Math.sqrt(headDim) : o.softmaxScale;
  if (typeof softmaxScale !== 'number') throw typeErr('a number', 'options.softmaxScale', softmaxScale);
  if (!Number.isFinite(softmaxScale)) throw rangeErr('a finite number', 'options.softmaxScale', softmaxScale);
  const softcap = o.softcap === undefined ? 0 : o.softcap;
  if (typeof softcap !== 'number') throw typeErr('a number', 'options.softcap', softcap);
  if (!Number.isFinite(softcap) || softcap < 0) throw rangeErr('a finite number >= 0', 'options.softcap', softcap);
  let alibiSlopes: Float32Array | null = null;
  if (o.alibiSlopes !== undefined && o.alibiSlopes !== null) {
    const a = o.alibiSlopes;
    if (!(a instanceof Float32Array) && !Array.isArray(a)) throw typeErr('a Float32Array or number[]', 'options.alibiSlopes', a);
    if (a.length !== numHeads) throw rangeErr(`numHeads = ${numHeads} slopes`, 'options.alibiSlopes', a);
    for (const s of a) if (typeof s !== 'number' || !Number.isFinite(s)) throw rangeErr('finite slopes', 'options.alibiSlopes', a);
    alibiSlopes = Float32Array.from(a);
  }
  return { windowLeft, windowRight, softmaxScale, softcap, alibiSlopes, returnLse };
}

function checkSameDtype(q: AnyTensor, k: AnyTensor, v: AnyTensor): DType {
  if (k.dtype !== q.dtype) throw typeErr(`dtype '${q.dtype}' like q`, 'k.dtype', k.dtype);
  if (v.dtype !== q.dtype) throw typeErr(`dtype '${q.dtype}' like q`, 'v.dtype', v.dtype);
  // Host tensors and tensors resident in the wasm engine's memory may mix (a KV cache uploaded once, q
  // from the host); cuda tensors may not mix with host ones.
  const loc = q.location ?? 'cpu';
  const side = (l: string) => (l === 'wasm' ? 'cpu' : l);
  for (const [t, n] of [[k, 'k'], [v, 'v']] as const)
    if (side(t.location ?? 'cpu') !== side(loc)) throw typeErr(`a tensor on '${loc}' like q`, `${n}.location`, t.location ?? 'cpu');
  return q.dtype;
}

function maxLen(cu: Int32Array): number {
  let m = 0;
  for (let i = 1; i < cu.length; i++) m = Math.max(m, cu[i]! - cu[i - 1]!);
  return m;
}

/** Validates a packed call and returns its Problem (host inputs give a Problem of host tensors). */
export function validateVarlen(q: TensorInput, k: TensorInput, v: TensorInput, options: VarlenOptions): Problem<Tensor>;
export function validateVarlen(q: InputTensor, k: InputTensor, v: InputTensor, options: VarlenOptions): Problem<AnyTensor>;
export function validateVarlen(qIn: InputTensor, kIn: InputTensor, vIn: InputTensor, options: VarlenOptions): Problem<AnyTensor> {
  const { t: q, shape: qs } = checkTensor(qIn, 'q', 3);
  const { t: k, shape: ks } = checkTensor(kIn, 'k', 3);
  const { t: v, shape: vs } = checkTensor(vIn, 'v', 3);
  const dtype = checkSameDtype(q, k, v);
  if (vs[0] !== ks[0]) throw rangeErr(`v to have totalK = ${ks[0]} rows like k`, 'v.shape', vs);
  const heads = checkHeads(qs, ks, vs, 2);
  if (options === null || typeof options !== 'object') throw typeErr('an options object with cuSeqlensQ and cuSeqlensK', 'options', options);
  const cuSeqlensQ = checkCuSeqlens(options.cuSeqlensQ, 'options.cuSeqlensQ', qs[0]!, 'totalQ');
  const cuSeqlensK = checkCuSeqlens(options.cuSeqlensK, 'options.cuSeqlensK', ks[0]!, 'totalK');
  if (cuSeqlensK.length !== cuSeqlensQ.length)
    throw rangeErr(`the same length as options.cuSeqlensQ (${cuSeqlensQ.length})`, 'options.cuSeqlensK', cuSeqlensK);
  return {
    dtype, q, k, v, cuSeqlensQ, cuSeqlensK, batch: cuSeqlensQ.length - 1,
    totalQ: qs[0]!, totalK: ks[0]!, maxSeqlenQ: maxLen(cuSeqlensQ), maxSeqlenK: maxLen(cuSeqlensK),
    ...heads, ...checkOptions(options, heads.numHeads, heads.headDim),
    outShape: [qs[0]!, heads.numHeads, heads.headDimV], lseShape: [heads.numHeads, qs[0]!], fixedSeqlenQ: 0,
  };
}

/** Validates a fixed-length call ([batch, seqlen, heads, dim]) and returns its packed Problem. */
export function validateFixed(
  q: TensorInput, k: TensorInput, v: TensorInput, options?: AttentionOptions,
): Problem<Tensor> & { seqlenQ: number };
export function validateFixed(
  q: InputTensor, k: InputTensor, v: InputTensor, options?: AttentionOptions,
): Problem<AnyTensor> & { seqlenQ: number };
export function validateFixed(
  qIn: InputTensor, kIn: InputTensor, vIn: InputTensor, options: AttentionOptions = {},
): Problem<AnyTensor> & { seqlenQ: number } {
  const { t: q, shape: qs } = checkTensor(qIn, 'q', 4);
  const { t: k, shape: ks } = checkTensor(kIn, 'k', 4);
  const { t: v, shape: vs } = checkTensor(vIn, 'v', 4);
  const dtype = checkSameDtype(q, k, v);
  const batch = qs[0]!, seqlenQ = qs[1]!, seqlenK = ks[1]!;
  if (ks[0] !== batch) throw rangeErr(`k to have batch = ${batch} like q`, 'k.shape', ks);
  if (vs[0] !== batch) throw rangeErr(`v to have batch = ${batch} like q`, 'v.shape', vs);
  if (vs[1] !== seqlenK) throw rangeErr(`v to have seqlenK = ${seqlenK} like k`, 'v.shape', vs);
  const heads = checkHeads(qs, ks, vs, 3);
  const cuSeqlensQ = new Int32Array(batch + 1), cuSeqlensK = new Int32Array(batch + 1);
  for (let b = 0; b <= batch; b++) { cuSeqlensQ[b] = b * seqlenQ; cuSeqlensK[b] = b * seqlenK; }
  return {
    dtype, q, k, v, cuSeqlensQ, cuSeqlensK, batch, seqlenQ,
    outShape: [batch, seqlenQ, heads.numHeads, heads.headDimV], lseShape: [batch, heads.numHeads, seqlenQ], fixedSeqlenQ: seqlenQ,
    totalQ: batch * seqlenQ, totalK: batch * seqlenK, maxSeqlenQ: batch ? seqlenQ : 0, maxSeqlenK: batch ? seqlenK : 0,
    ...heads, ...checkOptions(options ?? {}, heads.numHeads, heads.headDim),
  };
}
