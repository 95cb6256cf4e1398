// Every "Bad input" rule of docs/semantics.md: the right error class and a message naming the argument,
// thrown before any engine sees the call.
import { describe, expect, it } from 'vitest';
import { engineFromBackend } from '../src/engine.js';
import type { Tensor, VarlenOptions } from '../src/types.js';
import { T, expectRefused, spyEngine } from './refused.js';

const { spy, engine, calls: spyCalls } = spyEngine();

const q = T([6, 4, 8]),
  k = T([9, 2, 8]),
  v = T([9, 2, 8]);
const opts = (o: Partial<VarlenOptions> = {}): VarlenOptions => ({
  cuSeqlensQ: Int32Array.of(0, 2, 6),
  cuSeqlensK: Int32Array.of(0, 4, 9),
  ...o,
});

type Case = [string, () => Promise<unknown>, ErrorConstructor, RegExp];
const varlen = (qq: unknown, kk: unknown, vv: unknown, o: unknown) => () =>
  engine.attentionVarlen(qq as Tensor, kk as Tensor, vv as Tensor, o as VarlenOptions);

const dev = (t: Tensor, location: 'cuda' | 'wasm') => ({ shape: t.shape, dtype: t.dtype, location, dispose() {} });

const rules: Case[] = [
  [
    'cuda k with host q',
    varlen(q, dev(k, 'cuda'), v, opts()),
    TypeError,
    /^Expected a tensor on 'cpu' like q for k.location but received "cuda"$/,
  ],
  [
    'host v with cuda q',
    varlen(dev(q, 'cuda'), dev(k, 'cuda'), v, opts()),
    TypeError,
    /^Expected a tensor on 'cuda' like q for v.location but received "cpu"$/,
  ],
  // host and wasm-resident tensors mix; an engine keeping no resident tensors refuses them with the fix
  [
    'wasm-resident k on an engine without resident tensors',
    varlen(q, dev(k, 'wasm'), v, opts()),
    TypeError,
    /for k but received a tensor resident in a wasm engine; download\(\) it/,
  ],
  ['q not a tensor', varlen(null, k, v, opts()), TypeError, /Expected a tensor .* for q but received null/],
  [
    'shape not an array',
    varlen({ data: q.data, shape: 'x', dtype: 'float32' }, k, v, opts()),
    TypeError,
    /for q.shape/,
  ],
  ['wrong rank', varlen(T([6, 32]), k, v, opts()), RangeError, /rank 3 for q.shape/],
  [
    'negative size',
    varlen({ ...q, shape: [6, -4, 8] }, k, v, opts()),
    RangeError,
    /non-negative integer sizes for q.shape/,
  ],
  ['unknown dtype', varlen({ ...q, dtype: 'float64' }, k, v, opts()), TypeError, /for q.dtype but received "float64"/],
  [
    'float32 with Uint16Array',
    varlen({ ...q, data: new Uint16Array(192) }, k, v, opts()),
    TypeError,
    /Float32Array .* for q.data/,
  ],
  [
    'float16 with Float32Array',
    varlen(
      { ...T([6, 4, 8], 'float16'), data: new Float32Array(192) },
      T([9, 2, 8], 'float16'),
      T([9, 2, 8], 'float16'),
      opts(),
    ),
    TypeError,
    /Uint16Array holding float16 bits for q.data/,
  ],
  [
    'data length',
    varlen({ ...q, data: new Float32Array(5) }, k, v, opts()),
    RangeError,
    /192 elements .* for q.data but received 5 elements/,
  ],
  ['mixed dtypes', varlen(q, T([9, 2, 8], 'float16'), v, opts()), TypeError, /dtype 'float32' like q for k.dtype/],
  ['k and v rows', varlen(q, k, T([8, 2, 8]), opts()), RangeError, /totalK = 9 rows like k for v.shape/],
  ['v heads', varlen(q, k, T([9, 1, 8]), opts()), RangeError, /numKvHeads = 2 heads like k for v.shape/],
  ['heads not a multiple', varlen(T([6, 3, 8]), k, v, opts()), RangeError, /multiple of numKvHeads for k.shape/],
  ['zero heads', varlen(T([6, 0, 8]), k, v, opts()), RangeError, /numHeads >= 1 for q.shape/],
  ['zero kv heads', varlen(q, T([9, 0, 8]), T([9, 0, 8]), opts()), RangeError, /numKvHeads >= 1 for k.shape/],
  ['headDim 0', varlen(T([6, 4, 0]), T([9, 2, 0]), v, opts()), RangeError, /headDim from 1 to 256 for q.shape/],
  ['headDim 257', varlen(T([6, 4, 257]), T([9, 2, 257]), v, opts()), RangeError, /headDim from 1 to 256 for q.shape/],
  ['k headDim', varlen(q, T([9, 2, 7]), v, opts()), RangeError, /k's headDim to equal q's \(8\) for k.shape/],
  ['headDimV 300', varlen(q, k, T([9, 2, 300]), opts()), RangeError, /headDimV from 1 to 256 for v.shape/],
  ['options missing', varlen(q, k, v, undefined), TypeError, /options object .* for options/],
  [
    'cuSeqlensQ type',
    varlen(q, k, v, opts({ cuSeqlensQ: [0, 2, 6] as unknown as Int32Array })),
    TypeError,
    /Int32Array for options.cuSeqlensQ/,
  ],
  [
    'cuSeqlensQ empty',
    varlen(q, k, v, opts({ cuSeqlensQ: new Int32Array(0) })),
    RangeError,
    /length batch \+ 1 >= 1 for options.cuSeqlensQ/,
  ],
  [
    'cuSeqlensQ[0]',
    varlen(q, k, v, opts({ cuSeqlensQ: Int32Array.of(1, 2, 6) })),
    RangeError,
    /options.cuSeqlensQ\[0\] = 0/,
  ],
  [
    'decreasing',
    varlen(q, k, v, opts({ cuSeqlensK: Int32Array.of(0, 5, 4, 9) })),
    RangeError,
    /non-decreasing offsets for options.cuSeqlensK/,
  ],
  [
    'last != total',
    varlen(q, k, v, opts({ cuSeqlensQ: Int32Array.of(0, 2, 5) })),
    RangeError,
    /last offset = totalQ = 6 for options.cuSeqlensQ/,
  ],
  [
    'batch mismatch',
    varlen(q, k, v, opts({ cuSeqlensK: Int32Array.of(0, 9) })),
    RangeError,
    /same length as options.cuSeqlensQ .* for options.cuSeqlensK/,
  ],
  ['causal type', varlen(q, k, v, opts({ causal: 1 as unknown as boolean })), TypeError, /boolean for options.causal/],
  [
    'returnLse type',
    varlen(q, k, v, opts({ returnLse: 'yes' as unknown as boolean })),
    TypeError,
    /boolean for options.returnLse/,
  ],
  [
    'precision value',
    varlen(q, k, v, opts({ precision: 'bfloat16' as unknown as 'float16' })),
    TypeError,
    /'float32' \(the default\) or 'float16' for options.precision but received/,
  ],
  [
    'precision type',
    varlen(q, k, v, opts({ precision: 16 as unknown as 'float16' })),
    TypeError,
    /for options.precision/,
  ],
  [
    'window shape',
    varlen(q, k, v, opts({ window: [1] as unknown as [number, number] })),
    TypeError,
    /\[left, right\] for options.window/,
  ],
  ['window value', varlen(q, k, v, opts({ window: [-2, 0] })), RangeError, /integers >= -1 .* for options.window/],
  ['window fraction', varlen(q, k, v, opts({ window: [1.5, 0] })), RangeError, /for options.window/],
  [
    'causal with right window',
    varlen(q, k, v, opts({ causal: true, window: [-1, 3] })),
    RangeError,
    /window\[1\] to be -1 or 0 when causal/,
  ],
  [
    'scale type',
    varlen(q, k, v, opts({ softmaxScale: '1' as unknown as number })),
    TypeError,
    /number for options.softmaxScale/,
  ],
  ['scale NaN', varlen(q, k, v, opts({ softmaxScale: NaN })), RangeError, /finite number .* for options.softmaxScale/],
  [
    'scale beyond float32',
    varlen(q, k, v, opts({ softmaxScale: 2.4e38 })),
    RangeError,
    /at most 2\^126 \(float32 range\) for options.softmaxScale/,
  ],
  [
    'scale bigint',
    varlen(q, k, v, opts({ softmaxScale: 4n as unknown as number })),
    TypeError,
    /number for options.softmaxScale but received 4n/,
  ],
  [
    'softcap negative',
    varlen(q, k, v, opts({ softcap: -1 })),
    RangeError,
    /0 \(off\) or a number from 2\^-126 to 2\^126 .* for options.softcap/,
  ],
  ['softcap tiny', varlen(q, k, v, opts({ softcap: 1e-45 })), RangeError, /for options.softcap but received 1e-45/],
  ['softcap huge', varlen(q, k, v, opts({ softcap: 2.4e38 })), RangeError, /for options.softcap/],
  [
    'softcap type',
    varlen(q, k, v, opts({ softcap: null as unknown as number })),
    TypeError,
    /number for options.softcap/,
  ],
  [
    'alibi type',
    varlen(q, k, v, opts({ alibiSlopes: 'x' as unknown as number[] })),
    TypeError,
    /Float32Array or number\[\] for options.alibiSlopes/,
  ],
  [
    'alibi length',
    varlen(q, k, v, opts({ alibiSlopes: [1, 2] })),
    RangeError,
    /numHeads = 4 slopes for options.alibiSlopes/,
  ],
  [
    'alibi value',
    varlen(q, k, v, opts({ alibiSlopes: [1, 2, Infinity, 1] })),
    RangeError,
    /finite slopes .* for options.alibiSlopes/,
  ],
  [
    'alibi beyond float32',
    varlen(q, k, v, opts({ alibiSlopes: [1, 2, 2.4e38, 1] })),
    RangeError,
    /finite slopes .* for options.alibiSlopes/,
  ],
  [
    'alibi string',
    varlen(q, k, v, opts({ alibiSlopes: [1, '2', 3, 4] as unknown as number[] })),
    TypeError,
    /numbers for options.alibiSlopes/,
  ],
  [
    'window string',
    varlen(q, k, v, opts({ window: ['4', 0] as unknown as [number, number] })),
    TypeError,
    /integers >= -1 .* for options.window/,
  ],
  [
    'window null',
    varlen(q, k, v, opts({ window: [null, 0] as unknown as [number, number] })),
    TypeError,
    /for options.window/,
  ],
  [
    'sinks type',
    varlen(q, k, v, opts({ sinks: 'x' as unknown as number[] })),
    TypeError,
    /Float32Array or number\[\] for options.sinks/,
  ],
  ['sinks length', varlen(q, k, v, opts({ sinks: [1, 2] })), RangeError, /numHeads = 4 sink logits for options.sinks/],
  ['sinks value', varlen(q, k, v, opts({ sinks: [1, NaN, 0, 0] })), RangeError, /finite logits .* for options.sinks/],
  [
    'sinks string',
    varlen(q, k, v, opts({ sinks: [1, '2', 0, 0] as unknown as number[] })),
    TypeError,
    /numbers for options.sinks/,
  ],
  [
    'misspelt option',
    varlen(q, k, v, opts({ casual: true } as never)),
    TypeError,
    /^Expected a known option for options.casual but received an unknown key; did you mean 'causal'\?$/,
  ],
  [
    'unknown option',
    varlen(q, k, v, opts({ flashiness: 3 } as never)),
    TypeError,
    /for options.flashiness .* known: causal, window/,
  ],
  [
    'fixed: cuSeqlens option',
    () =>
      engine.attention(T([1, 6, 4, 8]), T([1, 9, 2, 8]), T([1, 9, 2, 8]), { cuSeqlensQ: Int32Array.of(0, 6) } as never),
    TypeError,
    /options.cuSeqlensQ .* attentionVarlen's/,
  ],
  [
    'shape string',
    varlen({ data: q.data, shape: [6, '4', 8], dtype: 'float32' }, k, v, opts()),
    TypeError,
    /non-negative integer sizes for q.shape/,
  ],
  [
    'data a Proxy',
    varlen({ data: new Proxy(new Float32Array(192), {}), shape: [6, 4, 8] }, k, v, opts()),
    TypeError,
    /for q.data but received an object that is not a typed array/,
  ],
  [
    'throwing getter',
    varlen(
      {
        shape: [6, 4, 8],
        get data(): never {
          throw new Error('gone');
        },
      },
      k,
      v,
      opts(),
    ),
    TypeError,
    /readable value for q.data but received a property that threw Error: gone/,
  ],
  [
    'throwing option getter',
    varlen(q, k, v, {
      ...opts(),
      get softcap(): never {
        throw new RangeError('no');
      },
    }),
    TypeError,
    /readable value for options.softcap/,
  ],
  [
    'rows beyond int32',
    varlen({ ...dev(q, 'cuda'), shape: [2 ** 31, 4, 8] }, dev(k, 'cuda'), dev(v, 'cuda'), opts()),
    RangeError,
    /at most 2147483647 rows \(offsets are int32\) for q.shape/,
  ],
  [
    'fixed: a batch of 2^40',
    () =>
      engine.attention(
        { ...dev(T([1, 0, 4, 8]), 'cuda'), shape: [2 ** 40, 0, 4, 8] } as never,
        { ...dev(T([1, 0, 2, 8]), 'cuda'), shape: [2 ** 40, 0, 2, 8] } as never,
        { ...dev(T([1, 0, 2, 8]), 'cuda'), shape: [2 ** 40, 0, 2, 8] } as never,
      ),
    RangeError,
    /at most 2147483647 sequences \(batch\) .* for q.shape/,
  ],
  ['fixed: wrong rank', () => engine.attention(q, k, v), RangeError, /rank 4 for q.shape/],
  [
    'fixed: batch',
    () => engine.attention(T([2, 3, 4, 8]), T([3, 3, 2, 8]), T([3, 3, 2, 8])),
    RangeError,
    /batch = 2 like q for k.shape/,
  ],
  [
    'fixed: seqlenK',
    () => engine.attention(T([2, 3, 4, 8]), T([2, 3, 2, 8]), T([2, 4, 2, 8])),
    RangeError,
    /seqlenK = 3 like k for v.shape/,
  ],
];

describe('bad input is rejected before any work', () => {
  it.each(rules)('%s', async (_name, call, cls, message) => {
    await expectRefused(call, cls, message, spyCalls);
  });

  it('the valid call does reach the engine', async () => {
    await expect(engine.attentionVarlen(q, k, v, opts())).rejects.toThrow('the engine must not be reached');
    expect(spyCalls()).toBe(1);
  });

  it("an engine's own limits are a RangeError before any work", async () => {
    const picky = engineFromBackend({ ...spy, unsupported: () => 'Expected headDim <= 4 for q.shape but received 8' });
    await expect(picky.attentionVarlen(q, k, v, opts())).rejects.toThrow(RangeError);
    expect(spyCalls()).toBe(1);
  });
});
