// Every rule of docs/semantics.md's KV cache section: the right error class, a message naming the argument,
// and nothing written (the spy engine of test/kvcache-spy.ts counts what reaches it).
import { beforeAll, describe, expect, it } from 'vitest';
import { engineFromBackend } from '../src/engine.js';
import type { KvCacheWriteOptions } from '../src/kvcache/types.js';
import {
  T,
  bare,
  base,
  caches,
  call,
  create,
  dev,
  engine,
  kNew,
  makeCaches,
  q,
  reached,
  spec,
  vNew,
  without,
  write,
  writeBase,
  spyBackend,
} from './kvcache-spy.js';

type Case = [string, () => Promise<unknown>, ErrorConstructor, RegExp];
const createRules: Case[] = [
  ['options not an object', create(8), TypeError, /for options but received 8/],
  ['misspelt key', create({ ...spec, numBlock: 8 }), TypeError, /options.numBlock .* did you mean 'numBlocks'/],
  [
    'numBlocks missing',
    create({ ...spec, numBlocks: undefined }),
    TypeError,
    /for options.numBlocks but received undefined/,
  ],
  ['numBlocks a string', create({ ...spec, numBlocks: '8' }), TypeError, /for options.numBlocks but received "8"/],
  ['numBlocks 0', create({ ...spec, numBlocks: 0 }), RangeError, /integer from 1 .* for options.numBlocks/],
  ['numBlocks 1.5', create({ ...spec, numBlocks: 1.5 }), RangeError, /for options.numBlocks but received 1.5/],
  ['blockSize 0', create({ ...spec, blockSize: 0 }), RangeError, /for options.blockSize but received 0/],
  ['blockSize NaN', create({ ...spec, blockSize: NaN }), RangeError, /for options.blockSize but received NaN/],
  [
    'more than 2^31 - 1 rows',
    create({ ...spec, numBlocks: 2 ** 20, blockSize: 2 ** 12 }),
    RangeError,
    /rows in all \(numBlocks x blockSize.* for options.blockSize/,
  ],
  ['numKvHeads 0', create({ ...spec, numKvHeads: 0 }), RangeError, /for options.numKvHeads/],
  ['headDim 0', create({ ...spec, headDim: 0 }), RangeError, /from 1 to 256 for options.headDim/],
  ['headDim 257', create({ ...spec, headDim: 257 }), RangeError, /from 1 to 256 for options.headDim/],
  ['headDimV 300', create({ ...spec, headDimV: 300 }), RangeError, /from 1 to 256 for options.headDimV/],
  [
    'dtype float64',
    create({ ...spec, dtype: 'float64' }),
    TypeError,
    /'float32', 'float16', 'bfloat16' for options.dtype/,
  ],
  [
    'elements beyond 2^53',
    create({ numBlocks: 2 ** 30, blockSize: 1, numKvHeads: 2 ** 24, headDim: 8 }),
    RangeError,
    /fewer than 2\^53 elements .* for options/,
  ],
];

const cacheRules = (run: (c: () => unknown) => () => Promise<unknown>): Case[] => [
  ['cache null', run(() => null), TypeError, /KV cache .* for cache but received null/],
  [
    'cache of another engine',
    run(() => caches.foreign),
    TypeError,
    /made by this wasm engine's createKvCache for cache/,
  ],
  [
    'a look-alike object',
    run(() => ({ ...caches.cache })),
    TypeError,
    /made by this wasm engine's createKvCache for cache/,
  ],
  ['disposed cache', run(() => caches.disposed), TypeError, /not disposed for cache but received a disposed cache/],
];

const layoutRules = (run: (o: Partial<KvCacheWriteOptions>) => () => Promise<unknown>): Case[] => [
  ['cacheSeqlens an array', run({ cacheSeqlens: [5, 2] as never }), TypeError, /Int32Array for options.cacheSeqlens/],
  [
    'cacheSeqlens length',
    run({ cacheSeqlens: Int32Array.of(5) }),
    RangeError,
    /length batch = 2 .* for options.cacheSeqlens/,
  ],
  [
    'a negative length',
    run({ cacheSeqlens: Int32Array.of(5, -1) }),
    RangeError,
    /lengths >= 0 for options.cacheSeqlens but received options.cacheSeqlens\[1\] = -1/,
  ],
  [
    'blockTable a Uint32Array',
    run({ blockTable: new Uint32Array(6) as never }),
    TypeError,
    /Int32Array for options.blockTable/,
  ],
  [
    'blockTable length',
    run({ blockTable: new Int32Array(5) }),
    RangeError,
    /multiple of batch = 2 .* for options.blockTable/,
  ],
  [
    'c + n beyond maxBlocksPerSeq x blockSize',
    run({ cacheSeqlens: Int32Array.of(12, 2) }),
    RangeError,
    /maxBlocksPerSeq x blockSize = 3 x 4 = 12 rows .* for options.blockTable but received sequence 0: 12 \+ 1 = 13 rows/,
  ],
  [
    'c + n beyond int32',
    run({ cacheSeqlens: Int32Array.of(2 ** 31 - 1, 2) }),
    RangeError,
    /at most 2147483647 rows per sequence .* for options.cacheSeqlens/,
  ],
  [
    'a block id >= numBlocks',
    run({ blockTable: Int32Array.of(0, 8, -1, 2, -1, -1) }),
    RangeError,
    /block ids in \[0, numBlocks = 8\) .* for options.blockTable but received blockTable\[1\] = 8 \(sequence 0, its block 1: positions 4 to 5\)/,
  ],
  [
    'a -1 among the blocks a sequence holds',
    run({ blockTable: Int32Array.of(-1, 1, -1, 2, -1, -1) }),
    RangeError,
    /for options.blockTable but received blockTable\[0\] = -1/,
  ],
  [
    'two sequences writing one (block, row)',
    run({ cacheSeqlens: Int32Array.of(1, 0), blockTable: Int32Array.of(3, -1, -1, 3, -1, -1) }),
    RangeError,
    /distinct \(block, row\) .* for options.blockTable but received block 3 row 1 written by sequences 1 and 0/,
  ],
];

const writeRules: Case[] = [
  ...cacheRules((c) => write({}, kNew, vNew, c)),
  ['kNew not a tensor', write({}, 'k'), TypeError, /for kNew but received "k"/],
  ['kNew rank', write({}, T([3, 16])), RangeError, /rank 3 for kNew.shape/],
  ['kNew heads', write({}, T([3, 1, 8])), RangeError, /numKvHeads = 2, headDim = 8\] like the cache for kNew.shape/],
  ['kNew headDim', write({}, T([3, 2, 4])), RangeError, /for kNew.shape but received \[3, 2, 4\]/],
  ['vNew rows', write({}, kNew, T([2, 2, 8])), RangeError, /totalNew = 3, .* for vNew.shape/],
  ['vNew headDimV', write({}, kNew, T([3, 2, 4])), RangeError, /headDimV = 8\] .* for vNew.shape/],
  ['kNew dtype', write({}, T([3, 2, 8], 'float16')), TypeError, /dtype 'float32' like the cache for kNew.dtype/],
  [
    'vNew on cuda',
    write({}, kNew, dev([3, 2, 8], 'float32', 'cuda')),
    TypeError,
    /one on 'wasm' like the cache for vNew.location/,
  ],
  ['options missing', write(null), TypeError, /for options but received null/],
  [
    'unknown option',
    write({ cuSeqlensQ: Int32Array.of(0, 3) } as never),
    TypeError,
    /known option for options.cuSeqlensQ/,
  ],
  [
    'cuSeqlensNew missing',
    write({ cuSeqlensNew: undefined }),
    TypeError,
    /Int32Array for options.cuSeqlensNew but received undefined/,
  ],
  [
    'cuSeqlensNew total',
    write({ cuSeqlensNew: Int32Array.of(0, 1, 2) }),
    RangeError,
    /last offset = totalNew = 3 for options.cuSeqlensNew/,
  ],
  [
    'cuSeqlensNew decreasing',
    write({ cuSeqlensNew: Int32Array.of(0, 2, 1, 3) }),
    RangeError,
    /non-decreasing offsets for options.cuSeqlensNew/,
  ],
  ...layoutRules((o) => write(o)),
  [
    'one sequence writing a row twice (its table lists a block twice)',
    write(
      {
        cacheSeqlens: Int32Array.of(0, 0),
        blockTable: Int32Array.of(4, 4, -1, 2, -1, -1),
        cuSeqlensNew: Int32Array.of(0, 5, 5),
      },
      T([5, 2, 8]),
      T([5, 2, 8]),
    ),
    RangeError,
    /for options.blockTable but received block 4 row 0 written twice by sequence 0/,
  ],
];

const callRules: Case[] = [
  ...cacheRules((c) => call({}, q, c)),
  ['q not a tensor', call({}, null), TypeError, /for q but received null/],
  ['q rank', call({}, T([1, 3, 4, 8])), RangeError, /rank 3 for q.shape/],
  ['q dtype', call({}, T([3, 4, 8], 'bfloat16')), TypeError, /dtype 'float32' like the cache for q.dtype/],
  [
    'q heads not a multiple',
    call({}, T([3, 3, 8])),
    RangeError,
    /numHeads \(3\) to be a multiple of the cache's numKvHeads \(2\) for q.shape/,
  ],
  ['q without heads', call({}, T([3, 0, 8])), RangeError, /numHeads >= 1 for q.shape/],
  ['q headDim', call({}, T([3, 4, 16])), RangeError, /headDim = 8 like the cache for q.shape/],
  [
    'q on cuda with a wasm cache',
    call({}, dev([3, 4, 8], 'float32', 'cuda')),
    TypeError,
    /like the cache for q.location but received "cuda"/,
  ],
  [
    'q float16 on a float16 cache, kNew float32',
    () => engine.attentionWithKvCache(T([3, 4, 8], 'float16'), caches.half, base()),
    TypeError,
    /dtype 'float16' like the cache for options.kNew.dtype/,
  ],
  [
    'vNew headDimV of a Dv = 4 cache',
    () =>
      engine.attentionWithKvCache(T([3, 4, 8], 'float16'), caches.half, {
        ...base(),
        kNew: T([3, 2, 8], 'float16'),
        vNew: T([3, 2, 8], 'float16'),
      }),
    RangeError,
    /headDimV = 4\] .* for options.vNew.shape/,
  ],
  ['options missing', call(null), TypeError, /options object .* for options but received null/],
  ['cuSeqlensQ missing', without('cuSeqlensQ'), TypeError, /Int32Array for options.cuSeqlensQ but received undefined/],
  [
    'cuSeqlensQ total',
    call({ cuSeqlensQ: Int32Array.of(0, 1, 2) }),
    RangeError,
    /last offset = totalQ = 3 for options.cuSeqlensQ/,
  ],
  ['cacheSeqlens missing', without('cacheSeqlens'), TypeError, /Int32Array for options.cacheSeqlens/],
  [
    'cacheSeqlens of another batch',
    call({ cacheSeqlens: Int32Array.of(5, 2, 0) }),
    RangeError,
    /length batch = 2 \(options.cuSeqlensQ.length - 1\) for options.cacheSeqlens/,
  ],
  ['blockTable missing', without('blockTable'), TypeError, /Int32Array for options.blockTable/],
  [
    'kNew without vNew',
    without('vNew'),
    TypeError,
    /kNew and vNew together .* for options.vNew but received undefined/,
  ],
  [
    'vNew without kNew',
    without('kNew'),
    TypeError,
    /kNew and vNew together .* for options.kNew but received undefined/,
  ],
  [
    'kNew rows unlike totalQ without cuSeqlensNew',
    call({ kNew: T([2, 2, 8]), vNew: T([2, 2, 8]) }),
    RangeError,
    /totalQ = 3 rows \(cuSeqlensNew defaults to cuSeqlensQ\) for options.kNew.shape/,
  ],
  ['kNew heads', call({ kNew: T([3, 4, 8]) }), RangeError, /like the cache for options.kNew.shape/],
  [
    'cuSeqlensNew length',
    call({ cuSeqlensNew: Int32Array.of(0, 3) }),
    RangeError,
    /same length as options.cuSeqlensQ \(3\) for options.cuSeqlensNew/,
  ],
  [
    'cuSeqlensNew total',
    call({ cuSeqlensNew: Int32Array.of(0, 1, 2) }),
    RangeError,
    /last offset = totalNew = 3 for options.cuSeqlensNew/,
  ],
  [
    'cuSeqlensNew rows without kNew',
    without('kNew', { vNew: undefined, cuSeqlensNew: Int32Array.of(0, 1, 3) }),
    RangeError,
    /totalNew \(no kNew\/vNew\) = 0 for options.cuSeqlensNew/,
  ],
  [
    'cuSeqlensK',
    call({ cuSeqlensK: Int32Array.of(0, 6, 10) } as never),
    TypeError,
    /options.cuSeqlensK .* no cuSeqlensK: its key lengths are cacheSeqlens plus the new rows/,
  ],
  [
    'misspelt blockTable',
    call({ blockTabel: 1 } as never),
    TypeError,
    /options.blockTabel .* did you mean 'blockTable'\?/,
  ],
  [
    "misspelt causal (the attention options are validate.ts's)",
    call({ casual: true } as never),
    TypeError,
    /options.casual .* did you mean 'causal'\?/,
  ],
  [
    'unknown option',
    call({ flashiness: 3 } as never),
    TypeError,
    /options.flashiness .* known: causal, window, .*, cuSeqlensQ, cacheSeqlens, blockTable, kNew, vNew, cuSeqlensNew$/,
  ],
  ['causal not a boolean', call({ causal: 1 as never }), TypeError, /boolean for options.causal/],
  ['window', call({ window: [-2, 0] }), RangeError, /integers >= -1 .* for options.window/],
  [
    'causal with a right window',
    call({ causal: true, window: [-1, 2] }),
    RangeError,
    /window\[1\] to be -1 or 0 when causal/,
  ],
  ['softcap', call({ softcap: -1 }), RangeError, /for options.softcap/],
  ['softmaxScale', call({ softmaxScale: NaN }), RangeError, /for options.softmaxScale/],
  ['alibiSlopes length', call({ alibiSlopes: [1, 2] }), RangeError, /numHeads = 4 slopes for options.alibiSlopes/],
  ['out with host q', call({ out: dev([3, 4, 8], 'float32', 'cuda') }), TypeError, /for options.out/],
  [
    'throwing getter',
    () =>
      engine.attentionWithKvCache(q, caches.cache, {
        ...base(),
        get blockTable(): never {
          throw new Error('gone');
        },
      }),
    TypeError,
    /readable value for options.blockTable but received a property that threw Error: gone/,
  ],
  ...layoutRules((o) => call(o)),
];

const noKv: Case[] = [
  [
    'createKvCache',
    () => bare.createKvCache(spec),
    TypeError,
    /engine with a KV cache for engine.createKvCache but received a wasm engine that has none yet/,
  ],
  [
    'writeKvCache',
    () => bare.writeKvCache(caches.cache, kNew, vNew, writeBase()),
    TypeError,
    /for engine.writeKvCache/,
  ],
  [
    'attentionWithKvCache',
    () => bare.attentionWithKvCache(q, caches.cache, base()),
    TypeError,
    /for engine.attentionWithKvCache/,
  ],
];

async function rejects([, run, cls, message]: Case) {
  const before = { ...reached };
  const err = await run().then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(cls);
  expect((err as Error).message).toMatch(message);
  expect((err as Error).message).toMatch(/^Expected .* for .* but received/);
  expect(reached).toEqual(before);
}

describe('KV cache bad input is rejected before anything is written', () => {
  beforeAll(makeCaches);
  it.each(createRules)('createKvCache: %s', async (...c) => rejects(c));
  it.each(writeRules)('writeKvCache: %s', async (...c) => rejects(c));
  it.each(callRules)('attentionWithKvCache: %s', async (...c) => rejects(c));
  it.each(noKv)('an engine without a KV cache: %s', async (...c) => rejects(c));

  it('a disposed engine refuses at once', async () => {
    const e = engineFromBackend(spyBackend());
    const c = await e.createKvCache(spec);
    await e.dispose();
    await expect(e.attentionWithKvCache(q, c, base())).rejects.toThrow(/not disposed for engine.attentionWithKvCache/);
    await expect(e.createKvCache(spec)).rejects.toThrow(TypeError);
  });
});
