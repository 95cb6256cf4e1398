/**
 * Every rule of the contract's "Bad input" (docs/semantics.md), checked once, before any engine sees
 * the call, so all engines reject bad input with the same words (src/errors.ts).
 */
import { rangeErr, readKey, typeErr, words } from './errors.js';
import { checkTensor, isView } from './inputs.js';
import { checkInto, checkOptions, checkVarlenOptions } from './options.js';
import type { Problem } from './problem.js';
import type { AnyTensor, AttentionOptions, DType, InputTensor, Tensor, TensorInput, VarlenOptions } from './types.js';

export { readHostTensor } from './inputs.js';
export { OPTION_KEYS, callerTensor, checkVarlenOptions } from './options.js';

export const MAX_HEAD_DIM = 256;
/** Rows of q or k: cuSeqlens are int32. */
const MAX_ROWS = 2 ** 31 - 1;

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

/** The longest sequence of packed offsets. */
export function maxLen(cu: Int32Array): number {
  let m = 0;
  for (let i = 1; i < cu.length; i++) m = Math.max(m, cu[i]! - cu[i - 1]!);
  return m;
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
  const o = checkVarlenOptions(
    options,
    q,
    dtype,
    qs[0]!,
    heads.numHeads,
    heads.headDim,
    heads.headDimV,
    maxSeqlenQ + maxSeqlenK,
  );
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
    ...o,
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
