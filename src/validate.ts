/**
 * Every rule of SEMANTICS.md's "Bad input", checked once, before any engine sees the call, so
 * all engines reject bad input with the same words: "Expected <what> for <name> but received <actual>".
 */
import type { AnyTensor, AttentionOptions, DType, VarlenOptions } from './types.js';
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

/** Checks one tensor and returns its dtype-checked shape. */
function checkTensor(t: AnyTensor, name: string, rank: number): number[] {
  if (t === null || typeof t !== 'object') throw typeErr('a tensor { data, shape, dtype }', name, t);
  const shape = (t as { shape?: unknown }).shape;
  if (!Array.isArray(shape)) throw typeErr('an array of integers', `${name}.shape`, shape);
  if (shape.length !== rank) throw rangeErr(`a shape of rank ${rank}`, `${name}.shape`, shape);
  for (const s of shape) if (!isInt(s) || s < 0) throw rangeErr('non-negative integer sizes', `${name}.shape`, shape);
  const dtype = t.dtype;
  if (!DTYPES.includes(dtype)) throw typeErr(`one of ${DTYPES.map((d) => `'${d}'`).join(', ')}`, `${name}.dtype`, dtype);
  if (t.location === 'cuda' || t.location === 'wasm') return shape;
  const data = (t as { data?: unknown }).data;
  if (dtype === 'float32' && !(data instanceof Float32Array))
    throw typeErr("a Float32Array (dtype 'float32')", `${name}.data`, data);
  if (dtype !== 'float32' && !(data instanceof Uint16Array))
    throw typeErr(`a Uint16Array holding ${dtype} bits`, `${name}.data`, data);
  const size = shape.reduce((a: number, b: number) => a * b, 1);
  if ((data as Float32Array | Uint16Array).length !== size)
    throw rangeErr(`${size} elements (shape [${shape.join(', ')}])`, `${name}.data`, words(`${(data as ArrayLike<number>).length} elements`));
  return shape;
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

/** Validates a packed call and returns its Problem. */
export function validateVarlen<T extends AnyTensor>(q: T, k: T, v: T, options: VarlenOptions): Problem<T> {
  const qs = checkTensor(q, 'q', 3), ks = checkTensor(k, 'k', 3), vs = checkTensor(v, 'v', 3);
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
export function validateFixed<T extends AnyTensor>(q: T, k: T, v: T, options: AttentionOptions = {}): Problem<T> & { seqlenQ: number } {
  const qs = checkTensor(q, 'q', 4), ks = checkTensor(k, 'k', 4), vs = checkTensor(v, 'v', 4);
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
