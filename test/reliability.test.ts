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
const lens = [
  [5, 40],
  [33, 33],
  [0, 7],
  [9, 0],
] as const;
const cuSeqlensQ = Int32Array.from([0, 5, 38, 38, 47]),
  cuSeqlensK = Int32Array.from([0, 40, 73, 80, 80]);
const t = (rows: number): Tensor => ({ data: randn(next, rows * H * D), shape: [rows, H, D], dtype: 'float32' });
const q = t(47),
  k = t(80),
  v = t(80);
const base: VarlenOptions = { cuSeqlensQ, cuSeqlensK, returnLse: true };

let engines: Engine[];
beforeAll(async () => {
  engines = [await createEngine({ backend: 'wasm', threads: 1 }), await createEngine({ backend: 'wasm', threads: 2 })];
});
afterAll(async () => {
  for (const e of engines) await e.dispose();
});

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

describe('huge calls are refused before any memory proportional to them is taken', () => {
  // (one decode item per sequence holds up to 8 kv heads, so the count is that of sequences here)
  it('5,242,880 one-token sequences: a RangeError at once, not an out-of-memory crash', async () => {
    const n = 5 * 2 ** 20,
      Hh = 1,
      d = 1;
    const cu = Int32Array.from({ length: n + 1 }, (_, i) => i);
    const x: Tensor = { data: new Float32Array(n * Hh * d), shape: [n, Hh, d], dtype: 'float32' };
    const before = process.memoryUsage().heapUsed;
    const t0 = performance.now();
    const err = await engines[0]!.attentionVarlen(x, x, x, { cuSeqlensQ: cu, cuSeqlensK: cu }).then(
      () => null,
      (e: Error) => e,
    );
    expect(err).toBeInstanceOf(RangeError);
    expect(err!.message).toMatch(
      /^Expected a call of at most 4194304 work items .* but received one of 5242880; split the batch$/,
    );
    expect(performance.now() - t0).toBeLessThan(5000);
    expect(process.memoryUsage().heapUsed - before).toBeLessThan(64 * 2 ** 20);
  });
});

describe('inputs are taken at the call', () => {
  it("the arrays' contents changed right after the call (engine idle or busy) do not change it", async () => {
    for (const e of engines) {
      const want = await e.attentionVarlen(q, k, v, base);
      const copies = () => ({
        q: { ...q, data: (q.data as Float32Array).slice() },
        k: { ...k, data: (k.data as Float32Array).slice() },
        v: { ...v, data: (v.data as Float32Array).slice() },
      });
      const calls = Array.from({ length: 3 }, () => {
        const c = copies();
        const r = e.attentionVarlen(c.q, c.k, c.v, base);
        for (const t of [c.q, c.k, c.v]) (t.data as Float32Array).fill(7); // the caller reuses its buffers at once
        return r;
      });
      for (const r of await Promise.all(calls)) expect(r.out.data).toEqual(want.out.data);
    }
  });

  it('cuSeqlens changed after the call do not change the call', async () => {
    const cq = Int32Array.from(cuSeqlensQ),
      ck = Int32Array.from(cuSeqlensK);
    for (const e of engines) {
      const want = await e.attentionVarlen(q, k, v, base);
      const pending = [
        e.attentionVarlen(q, k, v, { ...base, cuSeqlensQ: cq, cuSeqlensK: ck }),
        e.attentionVarlen(q, k, v, { ...base, cuSeqlensQ: cq, cuSeqlensK: ck }),
      ];
      cq.set([0, 1, 2, 3, 47]);
      ck.set([0, 70, 75, 79, 80]);
      for (const r of await Promise.all(pending)) expect(r.out.data).toEqual(want.out.data);
      cq.set(cuSeqlensQ);
      ck.set(cuSeqlensK);
    }
  });
});

describe('dispose and dead workers: every promise settles', () => {
  const big = { q: t(1500), k: t(1500), v: t(1500) };
  const opts: VarlenOptions = { cuSeqlensQ: Int32Array.of(0, 1500), cuSeqlensK: Int32Array.of(0, 1500), causal: true };
  for (const threads of [1, 2])
    it(`dispose with calls in flight and queued (threads ${threads}) rejects them with an AbortError`, async () => {
      const e = await createEngine({ backend: 'wasm', threads });
      const all = Promise.allSettled(Array.from({ length: 5 }, () => e.attentionVarlen(big.q, big.k, big.v, opts)));
      await e.dispose();
      const settled = await all;
      // Calls that had finished keep their result; every other one is rejected, none hangs.
      for (const s of settled) if (s.status === 'rejected') expect((s.reason as Error).name).toBe('AbortError');
      if (threads > 1) expect(settled.some((s) => s.status === 'rejected')).toBe(true);
      await expect(e.attentionVarlen(big.q, big.k, big.v, opts)).rejects.toThrow(/disposed/);
    });

  it('a worker that dies fails its call; it is replaced and the next calls are right', async () => {
    const { createWasmBackendWith } = await import('../src/wasm/core.js');
    const { nodePlatform } = await import('../src/wasm/platform-node.js');
    const { wasmFiles } = await import('../src/wasm/backend.js');
    const { engineFromBackend } = await import('../src/engine.js');
    type Handle = ReturnType<typeof nodePlatform.spawn>;
    const handles: { h: Handle; die: (e: Error) => void; dieOnRun: boolean }[] = [];
    // The platform's workers, with a way to make one die as a crashed worker would (its exit reported).
    const platform = {
      ...nodePlatform,
      spawn: (init: Parameters<typeof nodePlatform.spawn>[0]) => {
        const h = nodePlatform.spawn(init);
        const entry = { h, die: (_: Error) => {}, dieOnRun: false };
        handles.push(entry);
        return {
          post: (m: Parameters<Handle['post']>[0]) => h.post(m),
          // Armed, the worker dies instead of answering its next run: deterministically in flight.
          onMessage: (l: Parameters<Handle['onMessage']>[0]) =>
            h.onMessage((m) => {
              if (entry.dieOnRun && m.type === 'done') {
                entry.dieOnRun = false;
                entry.die(new Error('wasm worker exited (code 1)'));
                return;
              }
              l(m);
            }),
          onFailure: (l: (e: Error) => void) => {
            entry.die = (e) => {
              void h.terminate();
              l(e);
            };
            h.onFailure(l);
          },
          ref: () => h.ref(),
          unref: () => h.unref(),
          terminate: () => h.terminate(),
        };
      },
    };
    const engine = engineFromBackend(await createWasmBackendWith(platform, wasmFiles, { threads: 2 }));
    try {
      const want = await engine.attentionVarlen(big.q, big.k, big.v, opts);
      handles[1]!.dieOnRun = true; // it dies while it computes the next call
      const inFlight = engine.attentionVarlen(big.q, big.k, big.v, opts);
      await expect(inFlight).rejects.toThrow(/worker 1 died during the call .* replaced/);
      expect(handles.length).toBe(3);
      for (let i = 0; i < 3; i++)
        expect((await engine.attentionVarlen(big.q, big.k, big.v, opts)).out.data).toEqual(want.out.data);
    } finally {
      await engine.dispose();
    }
  });
});
