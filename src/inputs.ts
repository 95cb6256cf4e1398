/**
 * Host tensors as users hold them, read once into the one form the engines see. Every property is
 * read exactly once (a getter or Proxy cannot change its answer between a check and its use), the
 * shape is copied and the data view taken at the call, so reusing the objects afterwards changes
 * nothing.
 */
import { intIn, rangeErr, readKey, typeErr, words } from './errors.js';
import type {
  AnyTensor,
  DType,
  DeviceTensor,
  Float16ArrayLike,
  HostData,
  InputTensor,
  Tensor,
  TensorInput,
} from './types.js';

export const DTYPES: readonly DType[] = ['float32', 'float16', 'bfloat16'];
const DTYPE_WORDS = DTYPES.map((d) => `'${d}'`).join(', ');
/** Elements of one host tensor: typed arrays in every runtime stop below this. */
export const MAX_ELEMENTS = 2 ** 32;

/**
 * The class name in a typed array's internal slot (%TypedArray%.prototype's Symbol.toStringTag getter):
 * undefined for anything else, a DataView or a Proxy included, and the same across realms. Read at every
 * call (the checks of a decode step run thousands of times a second), so it builds no string.
 */
const typedArrayName = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(Int8Array.prototype), Symbol.toStringTag)!
  .get as (this: unknown) => string | undefined;
const tag = (x: unknown) => (ArrayBuffer.isView(x) ? typedArrayName.call(x) : undefined);
const isFloat16Array = (x: unknown): x is Float16ArrayLike => tag(x) === 'Float16Array';
/** A real typed array of that class (a Proxy of one is not a view and is refused). */
export const isView = <T>(x: unknown, C: { prototype: T; name: string }): x is T => tag(x) === C.name;

/** Checks a shape's sizes (numbers, TypeError; non-negative integers, RangeError) and copies it. */
export function readShape(shape: unknown, name: string): number[] {
  if (!Array.isArray(shape)) throw typeErr('an array of integers', name, shape);
  const dims = [...(shape as unknown[])];
  for (const s of dims) {
    if (typeof s !== 'number') throw typeErr('non-negative integer sizes', name, dims);
    if (!Number.isSafeInteger(s) || s < 0) throw rangeErr('non-negative integer sizes', name, dims);
  }
  return dims as number[];
}

/**
 * A host tensor in any accepted form (ours with or without `dtype`, a Float16Array, an onnxruntime
 * Tensor) as `{ data: Float32Array | Uint16Array, shape, dtype }`.
 */
export function readHostTensor(t: TensorInput, name: string): Tensor {
  if (t === null || typeof t !== 'object') throw typeErr('a tensor { data, shape, dtype? }', name, t);
  let shape: number[], dtype: unknown, data: unknown;
  const ort = !('shape' in t) && 'dims' in t && typeof readKey(t, 'type', `${name}.type`) === 'string';
  if (ort) {
    const loc = readKey(t, 'location', `${name}.location`) ?? 'cpu';
    if (loc !== 'cpu' && loc !== 'cpu-pinned')
      throw typeErr(
        "an onnxruntime Tensor on the CPU (location 'cpu'); bring it there with `await tensor.getData()`",
        `${name}.location`,
        loc,
      );
    dtype = readKey(t, 'type', `${name}.type`);
    if (dtype !== 'float32' && dtype !== 'float16')
      throw typeErr("an onnxruntime Tensor of type 'float32' or 'float16'", `${name}.type`, dtype);
    shape = readShape(readKey(t, 'dims', `${name}.dims`), `${name}.dims`);
  } else {
    shape = readShape(readKey(t, 'shape', `${name}.shape`), `${name}.shape`);
    dtype = readKey(t, 'dtype', `${name}.dtype`);
  }
  data = readKey(t, 'data', `${name}.data`);
  if (dtype !== undefined && !DTYPES.includes(dtype as DType))
    throw typeErr(`one of ${DTYPE_WORDS}`, `${name}.dtype`, dtype);
  let host: HostData;
  if (isView(data, Float32Array)) {
    if (dtype !== undefined && dtype !== 'float32')
      throw typeErr(`a Uint16Array holding ${dtype as string} bits`, `${name}.data`, data);
    host = data;
    dtype = 'float32';
  } else if (isFloat16Array(data)) {
    if (dtype !== undefined && dtype !== 'float16')
      throw typeErr(`dtype 'float16' for a Float16Array`, `${name}.dtype`, dtype);
    host = new Uint16Array(data.buffer, data.byteOffset, data.length);
    dtype = 'float16';
  } else if (isView(data, Uint16Array)) {
    if (dtype === undefined)
      throw typeErr("dtype 'float16' or 'bfloat16' (a Uint16Array holds half-precision bits)", `${name}.dtype`, dtype);
    if (dtype === 'float32') throw typeErr("a Float32Array (dtype 'float32')", `${name}.data`, data);
    host = data;
  } else {
    const what = `a Float32Array, Float16Array or Uint16Array${dtype ? ` for dtype '${dtype as string}'` : ''}`;
    const proxyLike = data !== null && typeof data === 'object' && !ArrayBuffer.isView(data) && !Array.isArray(data);
    throw typeErr(what, `${name}.data`, proxyLike ? words('an object that is not a typed array') : data);
  }
  const size = shape.reduce((a, b) => a * b, 1);
  if (size >= MAX_ELEMENTS) throw rangeErr(`fewer than ${MAX_ELEMENTS} elements`, `${name}.shape`, shape);
  if (host.length !== size)
    throw rangeErr(`${size} elements (shape [${shape.join(', ')}])`, `${name}.data`, words(`${host.length} elements`));
  // An empty tensor has nothing to read: a fresh empty array, so no engine touches a buffer that may be detached.
  if (size === 0) host = host instanceof Float32Array ? new Float32Array(0) : new Uint16Array(0);
  return { data: host, shape: Object.freeze(shape), dtype: dtype as DType, location: 'cpu' };
}

/** One input: host tensors read into the engines' form; tensors an engine keeps pass as they are (their engine checks them). */
export function checkTensor(t: InputTensor, name: string, rank: number): { t: AnyTensor; shape: number[] } {
  if (t === null || typeof t !== 'object') throw typeErr('a tensor { data, shape, dtype? }', name, t);
  const loc = readKey(t, 'location', `${name}.location`);
  let out: AnyTensor;
  if (loc === 'cuda' || loc === 'wasm') {
    const d = t as DeviceTensor;
    const shape = readShape(d.shape, `${name}.shape`);
    if (shape.reduce((a, b) => a * b, 1) >= 2 ** 53) throw rangeErr('a size below 2^53', `${name}.shape`, shape);
    if (!DTYPES.includes(d.dtype)) throw typeErr(`one of ${DTYPE_WORDS}`, `${name}.dtype`, d.dtype);
    out = d;
  } else {
    out = readHostTensor(t as TensorInput, name);
  }
  const shape = [...out.shape];
  if (shape.length !== rank) throw rangeErr(`a shape of rank ${rank}`, `${name}.shape`, shape);
  return { t: out, shape };
}

export { intIn };
