// Valid calls at the edges of the contract (issue "Reliability"): widths however large, inputs the
// caller changes after the call, engines disposed or workers killed with calls in flight.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randn, rng } from '../src/cli/random.js';
import { createEngine } from '../src/node.js';
import { referenceAttentionVarlen } from '../src/reference.js';
import type { Engine, Tensor, VarlenOptions } from '../src/types.js';

const seed = 4242;
const next = rng(seed);
const [H, D] = [2, 16];
const lens = [[5, 40], [33, 33], [0, 7], [9, 0]] as const;
const cuSeqlensQ = Int32Array.from([0, 5, 38, 38, 47]), cuSeqlensK = Int32Array.from([0, 40, 73, 80, 80]);
const t = (rows: number): Tensor => ({ data: randn(next, rows * H * D), shape: [rows, H, D], dtype: 'float32' });
const q = t(47), k = t(80), v = t(80);
const base: VarlenOptions = { cuSeqlensQ, cuSeqlensK, returnLse: true };

let engines: Engine[];
beforeAll(async () => { engines = [await createEngine({ backend: 'wasm', threads: 1 }), await createEngine({ backend: 'wasm', threads: 2 })]; });
afterAll(async () => { for (const e of engines) await e.dispose(); });

describe(`window widths however large (seed ${seed}, ${lens.length} sequences)`, () => {
  const cases: [string, [number, number], [number, number]][] = [
    ['2^32 left is unbounded', [2 ** 32, -1], [-1, -1]],
    ['2^31 - 1 right is unbounded', [-1, 2 ** 31 - 1], [-1, -1]],
    ['2^53 - 1 both', [2 ** 53 - 1, 2 ** 53 - 1], [-1, -1]],
    ['a left width one past the longest span', [5 + 40, 3], [-1, 3]],
  ];
  for (const [name, window, same] of cases)
    it(name, async () => {
      const ref = referenceAttentionVarlen(q, k, v, { ...base, window: same });
      for (const e of engines) {
        const a = await e.attentionVarlen(q, k, v, { ...base, window });
        const b = await e.attentionVarlen(q, k, v, { ...base, window: same });
        expect(a.out.data).toEqual(b.out.data);
        expect(a.lse!.data).toEqual(b.lse!.data);
        const err = Math.max(...Array.from(a.out.data as Float32Array, (x, i) => Math.abs(x - ref.out64[i]!)));
        expect(err).toBeLessThan(1e-4);
      }
    });
  it('with causal, a huge left width is still bounded on the right', async () => {
    const a = await engines[1]!.attentionVarlen(q, k, v, { ...base, causal: true, window: [2 ** 40, -1] });
    const b = await engines[1]!.attentionVarlen(q, k, v, { ...base, causal: true });
    expect(a.out.data).toEqual(b.out.data);
  });
});

describe('inputs are taken at the call', () => {
  it('cuSeqlens changed after the call do not change the call', async () => {
    const cq = Int32Array.from(cuSeqlensQ), ck = Int32Array.from(cuSeqlensK);
    for (const e of engines) {
      const want = await e.attentionVarlen(q, k, v, base);
      const pending = [e.attentionVarlen(q, k, v, { ...base, cuSeqlensQ: cq, cuSeqlensK: ck }), e.attentionVarlen(q, k, v, { ...base, cuSeqlensQ: cq, cuSeqlensK: ck })];
      cq.set([0, 1, 2, 3, 47]); ck.set([0, 70, 75, 79, 80]);
      for (const r of await Promise.all(pending)) expect(r.out.data).toEqual(want.out.data);
      cq.set(cuSeqlensQ); ck.set(cuSeqlensK);
    }
  });
});
