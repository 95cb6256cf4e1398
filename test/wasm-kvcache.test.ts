// The wasm engine's KV cache (src/wasm/kvcache.ts, the kernel's paged rows in assembly/rows.ts): each case of
// test/conformance/kvcache-cases.ts is one attentionWithKvCache on a cache loaded with a seeded scenario
// (test/kvcache-helpers.ts: scattered blocks, noise in the rows no sequence holds), at 1 and 2 threads,
// checked by test/conformance/kvcache.ts against referenceAttentionWithKvCache (outputs poisoned first; the
// cache's contents after, bit for bit), against the same engine's attentionVarlen on the keys laid end to
// end (bit for bit), and the two thread counts against each other (bit for bit). Needs `npm run build:wasm`.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEngine } from '../src/node.js';
import type { Engine } from '../src/types.js';
import { kvCases as cases } from './conformance/kvcache-cases.js';
import { freshSeed } from './kvcache-helpers.js';
import { runCase } from './wasm-kvcache-helpers.js';
import { firstDiff } from './wasm-helpers.js';

const seed = freshSeed();

describe(`wasm KV cache vs the reference, 1 and 2 threads (seed ${seed}; replay with FLASHATTN_SEED=${seed})`, () => {
  const engines = new Map<number, Engine>();
  beforeAll(async () => {
    for (const t of [1, 2]) engines.set(t, await createEngine({ backend: 'wasm', threads: t }));
  });
  afterAll(async () => {
    for (const e of engines.values()) await e.dispose();
  });

  it.each(cases)('%s', async (_name, c) => {
    const salt = seed + cases.findIndex(([, x]) => x === c);
    const one = await runCase(engines.get(1)!, c, salt);
    const two = await runCase(engines.get(2)!, c, salt);
    expect(firstDiff(one.out, two.out), 'out at 1 and 2 threads').toBe(-1);
    expect(firstDiff(one.lse, two.lse), 'lse at 1 and 2 threads').toBe(-1);
    expect(firstDiff(one.k, two.k), 'cache.k at 1 and 2 threads').toBe(-1);
  });
});
