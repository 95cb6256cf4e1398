// options.out / options.lse on calls on host tensors, and engine.hostTensor: every rule with its error class and
// the argument it names, thrown before any engine sees the call (a spy engine counts what reaches it; a KV
// cache call on the wasm engine leaves the cache bit for bit as it was).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend } from '../src/backend.js';
import { engineFromBackend } from '../src/engine.js';
import type { KvCache, KvCacheCallOptions } from '../src/kvcache/types.js';
import { createEngine } from '../src/node.js';
import { referenceAttentionVarlen } from '../src/reference.js';
import type { DType, Engine, Tensor, VarlenOptions } from '../src/types.js';
import { firstDiff, loadKvCache } from './conformance/kvcache.js';
import { scenario } from './kvcache-helpers.js';
import { T, expectRefused, spyEngine } from './refused.js';

const { spy, engine, calls: spyCalls } = spyEngine();

const dev = (shape: number[], dtype: DType, location: 'cuda' | 'wasm') => ({ shape, dtype, location, dispose() {} });
// q [6, 4, 8], v's headDimV 4: out [6, 4, 4], lse [4, 6]
const q = T([6, 4, 8]),
  k = T([9, 2, 8]),
  v = T([9, 2, 4]);
const opts = (o: object = {}): VarlenOptions => ({
  cuSeqlensQ: Int32Array.of(0, 2, 6),
  cuSeqlensK: Int32Array.of(0, 4, 9),
  ...o,
});
const varlen =
  (o: object, qq: unknown = q) =>
  () =>
    engine.attentionVarlen(qq as Tensor, k, v, opts(o) as VarlenOptions);
const half = T([6, 4, 8], 'bfloat16'),
  halfK = T([9, 2, 8], 'bfloat16'),
  halfV = T([9, 2, 4], 'bfloat16');
const halfCall = (o: object) => () => engine.attentionVarlen(half, halfK, halfV, opts(o));

type Case = [string, () => Promise<unknown>, ErrorConstructor, RegExp];
const rules: Case[] = [
  ['out not an object', varlen({ out: 3 }), TypeError, /^Expected a host tensor .* for options.out but received 3$/],
  [
    'a cuda out on a host call',
    varlen({ out: dev([6, 4, 4], 'float32', 'cuda') }),
    TypeError,
    /host tensor .*q is on the host.* for options.out but received a tensor on 'cuda'$/,
  ],
  [
    'a wasm-resident out (results of wasm calls are host tensors)',
    varlen({ out: dev([6, 4, 4], 'float32', 'wasm') }),
    TypeError,
    /for options.out but received a tensor on 'wasm'$/,
  ],
  [
    'a host out on a device call',
    () =>
      engine.attentionVarlen(
        dev([6, 4, 8], 'float32', 'cuda'),
        dev([9, 2, 8], 'float32', 'cuda'),
        dev([9, 2, 4], 'float32', 'cuda'),
        opts({ out: T([6, 4, 4]) }),
      ),
    TypeError,
    /^Expected a cuda device tensor of this engine \(q is on cuda\) for options.out but received a host tensor$/,
  ],
  [
    'out dtype unlike the call',
    varlen({ out: T([6, 4, 4], 'float16') }),
    TypeError,
    /^Expected dtype 'float32' for options.out.dtype but received "float16"$/,
  ],
  [
    'out without dtype',
    varlen({ out: { data: new Float32Array(96), shape: [6, 4, 4] } }),
    TypeError,
    /for options.out.dtype but received undefined/,
  ],
  [
    'out of the input shape (headDimV differs)',
    varlen({ out: T([6, 4, 8]) }),
    RangeError,
    /^Expected shape \[6, 4, 4\] for options.out.shape but received \[6, 4, 8\]$/,
  ],
  ['out shape not an array', varlen({ out: { ...T([6, 4, 4]), shape: 96 } }), RangeError, /for options.out.shape/],
  [
    'out data a Uint16Array on a float32 call',
    varlen({ out: { data: new Uint16Array(96), shape: [6, 4, 4], dtype: 'float32' } }),
    TypeError,
    /^Expected a Float32Array \(dtype 'float32'\) for options.out.data but received Uint16Array\(96\)$/,
  ],
  [
    'out data a Float32Array on a bfloat16 call',
    halfCall({ out: { data: new Float32Array(96), shape: [6, 4, 4], dtype: 'bfloat16' } }),
    TypeError,
    /^Expected a Uint16Array \(dtype 'bfloat16'\) for options.out.data/,
  ],
  [
    'out data a plain array',
    varlen({ out: { data: new Array(96).fill(0), shape: [6, 4, 4], dtype: 'float32' } }),
    TypeError,
    /for options.out.data but received an array of length 96/,
  ],
  [
    'out data too short',
    varlen({ out: { data: new Float32Array(95), shape: [6, 4, 4], dtype: 'float32' } }),
    RangeError,
    /^Expected 96 elements \(shape \[6, 4, 4\]\) for options.out.data but received 95 elements$/,
  ],
  [
    'out data too long',
    halfCall({ out: { data: new Uint16Array(97), shape: [6, 4, 4], dtype: 'bfloat16' } }),
    RangeError,
    /for options.out.data but received 97 elements/,
  ],
  [
    'out getter that throws',
    varlen({
      out: {
        ...T([6, 4, 4]),
        get data(): never {
          throw new Error('gone');
        },
      },
    }),
    TypeError,
    /readable value for options.out.data/,
  ],
  [
    'lse not float32',
    halfCall({ lse: T([4, 6], 'bfloat16') }),
    TypeError,
    /^Expected dtype 'float32' for options.lse.dtype but received "bfloat16"$/,
  ],
  ['lse shape', varlen({ lse: T([6, 4]) }), RangeError, /^Expected shape \[4, 6\] for options.lse.shape/],
  [
    'lse data of the wrong kind',
    varlen({ lse: { data: new Float64Array(24), shape: [4, 6], dtype: 'float32' } }),
    TypeError,
    /Float32Array .* for options.lse.data but received Float64Array\(24\)/,
  ],
  [
    'lse data of the wrong length',
    varlen({ lse: { data: new Float32Array(25), shape: [4, 6], dtype: 'float32' } }),
    RangeError,
    /for options.lse.data/,
  ],
  [
    'lse a cuda tensor',
    varlen({ lse: dev([4, 6], 'float32', 'cuda') }),
    TypeError,
    /for options.lse but received a tensor on 'cuda'/,
  ],
  [
    'a cuda out of another dtype on a device call',
    () =>
      engine.attentionVarlen(
        dev([6, 4, 8], 'float32', 'cuda'),
        dev([9, 2, 8], 'float32', 'cuda'),
        dev([9, 2, 4], 'float32', 'cuda'),
        opts({ out: dev([6, 4, 4], 'float16', 'cuda') }),
      ),
    TypeError,
    /^Expected dtype 'float32' for options.out.dtype but received "float16"$/,
  ],
  [
    'fixed: out of the packed shape',
    () => engine.attention(T([2, 3, 4, 8]), T([2, 5, 2, 8]), T([2, 5, 2, 8]), { out: T([6, 4, 8]) }),
    RangeError,
    /^Expected shape \[2, 3, 4, 8\] for options.out.shape but received \[6, 4, 8\]$/,
  ],
  [
    'fixed: lse of the packed shape',
    () => engine.attention(T([2, 3, 4, 8]), T([2, 5, 2, 8]), T([2, 5, 2, 8]), { lse: T([4, 6]) }),
    RangeError,
    /^Expected shape \[2, 4, 3\] for options.lse.shape/,
  ],
];

describe('host options.out and options.lse: bad ones are refused before any work', () => {
  it.each(rules)('%s', async (_name, call, cls, message) => {
    await expectRefused(call, cls, message, spyCalls);
  });

  it('good ones reach the engine as fresh tensors over the same arrays, with lse implying returnLse', async () => {
    let seen: Parameters<Backend['run']>[0] | null = null;
    const e = engineFromBackend({
      ...spy,
      run: async (p) => {
        seen = p;
        return { out: p.outInto!, lse: p.lseInto };
      },
    });
    const out = T([6, 4, 4]),
      lse = T([4, 6]);
    const r = await e.attentionVarlen(q, k, v, opts({ out, lse }));
    expect(r.out).toBe(out);
    expect(r.lse).toBe(lse);
    const p = seen!;
    expect(p.returnLse).toBe(true);
    expect((p.outInto as Tensor).data).toBe(out.data);
    expect((p.lseInto as Tensor).data).toBe(lse.data);
    expect(p.outInto).not.toBe(out);
    expect(e.supports(q, k, v, opts({ out, lse }))).toBeNull();
    expect(() => e.supports(q, k, v, opts({ out: lse }))).toThrow(/options.out.shape/);
    // a device out on a device call reaches the engine as it is
    const d = dev([6, 4, 4], 'float32', 'cuda');
    const dq = dev([6, 4, 8], 'float32', 'cuda');
    await e.attentionVarlen(dq, dev([9, 2, 8], 'float32', 'cuda'), dev([9, 2, 4], 'float32', 'cuda'), opts({ out: d }));
    expect(seen!.outInto).toBe(d);
  });

  it('the reference checks them alike and returns new float32 arrays', () => {
    const out = T([6, 4, 4]);
    const r = referenceAttentionVarlen(q, k, v, opts({ out, lse: T([4, 6]) }));
    expect(r.out).not.toBe(out);
    expect(r.lse?.shape).toEqual([4, 6]);
    expect(out.data.every((x) => x === 0.5)).toBe(true);
    expect(() => referenceAttentionVarlen(q, k, v, opts({ out: T([6, 4, 8]) }))).toThrow(/options.out.shape/);
  });
});

describe('a KV cache call with bad out or lse leaves the cache bit for bit as it was', () => {
  let wasm: Engine;
  let cache: KvCache;
  const s = scenario({
    seed: 3,
    seqs: [
      { c: 5, n: 2, lq: 2 },
      { c: 3, n: 1, lq: 1 },
    ],
    blockSize: 4,
  });
  const good = (): KvCacheCallOptions => ({
    cuSeqlensQ: s.cuSeqlensQ,
    cacheSeqlens: s.cacheSeqlens,
    blockTable: s.blockTable,
    kNew: s.kNew,
    vNew: s.vNew,
  });
  beforeAll(async () => {
    wasm = await createEngine({ backend: 'wasm', threads: 1 });
    cache = await loadKvCache(wasm, s);
  });
  afterAll(() => wasm?.dispose());

  const bad: [string, object, ErrorConstructor, RegExp][] = [
    ['out dtype', { out: T([3, 4, 8], 'float16') }, TypeError, /for options.out.dtype/],
    ['out shape', { out: T([3, 4, 4]) }, RangeError, /^Expected shape \[3, 4, 8\] for options.out.shape/],
    ['out data', { out: { data: new Float32Array(95), shape: [3, 4, 8], dtype: 'float32' } }, RangeError, /out.data/],
    ['out on cuda', { out: dev([3, 4, 8], 'float32', 'cuda') }, TypeError, /for options.out but received a tensor/],
    ['lse shape', { lse: T([3, 4]) }, RangeError, /^Expected shape \[4, 3\] for options.lse.shape/],
    ['lse data', { lse: { data: new Uint16Array(12), shape: [4, 3], dtype: 'float32' } }, TypeError, /lse.data/],
  ];
  it.each(bad)('%s', async (_name, o, cls, message) => {
    const before = { k: await wasm.download(cache.k), v: await wasm.download(cache.v) };
    const err = await wasm.attentionWithKvCache(s.q, cache, { ...good(), ...o }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(cls);
    expect((err as Error).message).toMatch(message);
    expect(firstDiff(await wasm.download(cache.k), before.k), 'cache.k').toBe(-1);
    expect(firstDiff(await wasm.download(cache.v), before.v), 'cache.v').toBe(-1);
    expect(firstDiff(before.k, s.cache.k), 'cache.k as loaded').toBe(-1);
  });
});

describe('engine.hostTensor', () => {
  it.each([
    [[2, 3, 4], 'float32', Float32Array],
    [[5], 'float16', Uint16Array],
    [[1, 0, 7], 'bfloat16', Uint16Array],
    [[], 'float32', Float32Array],
  ] as const)('%j %s: zeroed, of its class and size, on the cpu', (shape, dtype, C) => {
    const t = engine.hostTensor(shape, dtype);
    expect(t.data).toBeInstanceOf(C);
    expect(t.data.length).toBe(shape.reduce((a: number, b: number) => a * b, 1));
    expect(t.data.every((x) => x === 0)).toBe(true);
    expect(t).toEqual({ data: t.data, shape: [...shape], dtype, location: 'cpu' });
    expect(t.shape).not.toBe(shape);
  });

  it('uses the engine’s own arrays where it has them (the cuda engine’s page-locked memory)', () => {
    const asked: [number, DType][] = [];
    const e = engineFromBackend({
      ...spy,
      hostArray: (n, dtype) => {
        asked.push([n, dtype]);
        return dtype === 'float32' ? new Float32Array(n) : new Uint16Array(n);
      },
    });
    const t = e.hostTensor([3, 2], 'float16');
    expect(asked).toEqual([[6, 'float16']]);
    expect(t.data).toBeInstanceOf(Uint16Array);
  });

  it.each([
    ['shape not an array', () => engine.hostTensor(6 as never, 'float32'), TypeError, /for shape but received 6/],
    ['a size not a number', () => engine.hostTensor(['2'] as never, 'float32'), TypeError, /for shape/],
    ['a negative size', () => engine.hostTensor([2, -1], 'float32'), RangeError, /non-negative .* for shape/],
    ['a fractional size', () => engine.hostTensor([1.5], 'float32'), RangeError, /for shape/],
    ['too many elements', () => engine.hostTensor([2 ** 16, 2 ** 16], 'float32'), RangeError, /fewer than .* shape/],
    ['an unknown dtype', () => engine.hostTensor([2], 'float64' as never), TypeError, /for dtype but received/],
    ['no dtype', () => engine.hostTensor([2], undefined as never), TypeError, /for dtype but received undefined/],
  ] as const)('%s', (_name, call, cls, message) => {
    expect(call).toThrow(cls);
    expect(call).toThrow(message);
    expect(call).toThrow(/^Expected .* for .* but received/);
  });

  it('a disposed engine refuses it', async () => {
    const e = await createEngine({ backend: 'wasm', threads: 1 });
    await e.dispose();
    expect(() => e.hostTensor([2], 'float32')).toThrow(
      /^Expected an engine that is not disposed for engine.hostTensor but received a disposed wasm engine/,
    );
  });
});
