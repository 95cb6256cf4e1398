// The wasm engine's own tests: bitwise-identical results for every thread count, the split
// (decode) path against the reference, memory that does not grow with Lq x Lk, engine-specific
// refusals, and workers that let the process exit. (The shared conformance cases run in
// conformance.test.ts.) Needs `npm run build:wasm`.
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { caseId, makeCase as mk, splitCases as cases } from './conformance/cases.js';
import { randn, rng } from './conformance/random.js';
import { buildInputs, runCase, runEngine } from './conformance/run.js';
import { createEngine } from '../src/node.js';
import type { Problem } from '../src/problem.js';
import type { AnyTensor, Engine, Tensor } from '../src/types.js';
import { createWasmBackend, wasmFiles } from '../src/wasm/backend.js';
import { NK_MAX } from '../src/wasm/abi.js';
import { SPLIT_KEYS, planItems } from '../src/wasm/plan.js';
import { bundledScript, firstDiff } from './wasm-helpers.js';

describe('wasm engine', () => {
  const engines = new Map<number, Engine>();
  beforeAll(async () => {
    for (const t of [1, 2, 3]) engines.set(t, await createEngine({ backend: 'wasm', threads: t }));
  });
  afterAll(async () => {
    for (const e of engines.values()) await e.dispose();
  });

  it('reports its SIMD flavour, threads and kernel file', () => {
    const e = engines.get(2)!;
    expect(e.backend).toBe('wasm');
    expect(e.threads).toBe(2);
    expect(['relaxed', 'baseline']).toContain(e.info['simd']);
    expect(String(e.info['wasm'])).toMatch(/build\/wasm\/flashattn(-relaxed)?\.wasm$/);
  });

  it('the decode cases really split their key ranges', () => {
    const cuSeqlensQ = Int32Array.of(0, 1, 2, 3),
      cuSeqlensK = Int32Array.of(0, 3000, 4100, 9100);
    const plan = planItems({
      batch: 3,
      cuSeqlensQ,
      cuSeqlensK,
      numHeads: 32,
      numKvHeads: 8,
      windowLeft: -1,
      windowRight: 0,
    });
    // decode items hold NK_MAX kv heads each (one group of 4 rows per kv head)
    const items = 8 / NK_MAX;
    expect(plan.parentCount).toBe(3 * items);
    expect(plan.slotCount).toBe(
      items * (Math.ceil(3000 / SPLIT_KEYS) + Math.ceil(1100 / SPLIT_KEYS) + Math.ceil(5000 / SPLIT_KEYS)),
    );
  });

  cases.forEach((c, i) => {
    it(`matches the reference: ${caseId(c)}`, async () => {
      const r = await runCase(engines.get(2)!, c, 100 + i);
      expect(r.ok, `${r.id}: ${r.detail} (tolerance ${r.tolerance})`).toBe(true);
    });
    it(`is bitwise identical at 1, 2 and 3 threads: ${caseId(c)}`, async () => {
      const x = buildInputs(c, 200 + i);
      const [r1, r2, r3] = [
        await runEngine(engines.get(1)!, x),
        await runEngine(engines.get(2)!, x),
        await runEngine(engines.get(3)!, x),
      ];
      expect(firstDiff(r2.out, r1.out)).toBe(-1);
      expect(firstDiff(r3.out, r1.out)).toBe(-1);
      expect(firstDiff(r2.lse!, r1.lse!)).toBe(-1);
      expect(firstDiff(r3.lse!, r1.lse!)).toBe(-1);
    });
  });

  it('a NaN in V reaches only the rows that see its key', async () => {
    // causal, so only the last row of sequence 0 sees its last key; the tile holding it is a boundary tile
    const c = mk({ seqlensQ: [100, 30], seqlensK: [100, 30], numHeads: 2, numKvHeads: 1, causal: true });
    const x = buildInputs(c, 5);
    (x.v.data as Float32Array)[99 * 64 + 3] = NaN;
    for (const t of [1, 2]) {
      const r = await runEngine(engines.get(t)!, x);
      const out = r.out.data as Float32Array;
      for (let row = 0; row < 130; row++) {
        for (let h = 0; h < 2; h++) {
          for (let d = 0; d < 64; d++) {
            expect(Number.isNaN(out[(row * 2 + h) * 64 + d]!), `row ${row} head ${h} dim ${d}`).toBe(
              row === 99 && d === 3,
            );
          }
        }
      }
    }
  });

  it("computes float32 in float32 with precision 'float16' too (the option permits, never demands)", async () => {
    const next = rng(11);
    const t = (rows: number): Tensor => ({ data: randn(next, rows * 2 * 32), shape: [rows, 2, 32], dtype: 'float32' });
    const [q, k, v] = [t(40), t(70), t(70)];
    const o = { cuSeqlensQ: Int32Array.of(0, 15, 40), cuSeqlensK: Int32Array.of(0, 30, 70), causal: true };
    for (const e of engines.values()) {
      const a = await e.attentionVarlen(q, k, v, o);
      const b = await e.attentionVarlen(q, k, v, { ...o, precision: 'float16' });
      expect(b.out.data).toEqual(a.out.data);
    }
  });

  it('refuses device tensors and calls beyond 4 GiB, before any work', async () => {
    const b = await createWasmBackend({ threads: 1 });
    try {
      const host: Tensor = { data: new Float32Array(0), shape: [0, 1, 8], dtype: 'float32' };
      const p = {
        dtype: 'float32',
        q: host,
        k: host,
        v: host,
        cuSeqlensQ: Int32Array.of(0, 1),
        cuSeqlensK: Int32Array.of(0, 1 << 21),
        batch: 1,
        totalQ: 1,
        totalK: 1 << 21,
        maxSeqlenQ: 1,
        maxSeqlenK: 1 << 21,
        numHeads: 8,
        numKvHeads: 8,
        headDim: 256,
        headDimV: 256,
        windowLeft: -1,
        windowRight: -1,
        softmaxScale: 1,
        softcap: 0,
        alibiSlopes: null,
        returnLse: false,
        precision: 'float32' as const,
        outShape: [1, 8, 256],
        lseShape: [8, 1],
        fixedSeqlenQ: 0,
        outInto: null,
        lseInto: null,
        sinks: null,
      } satisfies Problem<AnyTensor>;
      expect(b.unsupported(p)).toMatch(/4 GiB/);
      const dev = { shape: [0, 1, 8], dtype: 'float32', location: 'cuda', dispose() {} } as const;
      expect(b.unsupported({ ...p, q: dev, k: dev, v: dev })).toBe(
        'Expected a host or wasm-resident tensor for q but received a cuda tensor; download() it first',
      );
      expect(b.unsupported({ ...p, totalK: 1, cuSeqlensK: Int32Array.of(0, 1), maxSeqlenK: 1 })).toBeNull();
    } finally {
      await b.dispose();
    }
  });

  it('runs one causal head of 32768 x 32768 (d 64) in tile-sized memory', async () => {
    const L = 32768,
      D = 64;
    const next = rng(7);
    const q = randn(next, L * D),
      k = randn(next, L * D),
      v = randn(next, L * D);
    const e = engines.get(2)!;
    const t = (data: Float32Array): Tensor => ({ data, shape: [L, 1, D], dtype: 'float32' });
    const before = process.memoryUsage().rss;
    const r = await e.attentionVarlen(t(q), t(k), t(v), {
      cuSeqlensQ: Int32Array.of(0, L),
      cuSeqlensK: Int32Array.of(0, L),
      causal: true,
    });
    const grown = process.memoryUsage().rss - before;
    expect(grown).toBeLessThan(1 << 30); // Lq x Lk floats would be 4 GiB
    const out = r.out.data as Float32Array;
    for (const i of [0, 1, 4095, 20000, L - 1]) {
      // a few rows against float64
      let m = -Infinity;
      const s = new Float64Array(i + 1);
      for (let j = 0; j <= i; j++) {
        let dot = 0;
        for (let d = 0; d < D; d++) dot += q[i * D + d]! * k[j * D + d]!;
        s[j] = dot / 8;
        m = Math.max(m, s[j]!);
      }
      const o = new Float64Array(D);
      let l = 0;
      for (let j = 0; j <= i; j++) {
        const p = Math.exp(s[j]! - m);
        l += p;
        for (let d = 0; d < D; d++) o[d] += p * v[j * D + d]!;
      }
      for (let d = 0; d < D; d++) expect(Math.abs(out[i * D + d]! - o[d]! / l)).toBeLessThan(1e-4);
    }
  }, 60_000);
});

describe('wasm engine lifetime', () => {
  // A child process (bundled from src/ with esbuild) runs a call on 2 workers and ends on its own.
  const script = bundledScript(
    'flashattn-wasm-',
    (src) => `
      import { createWasmBackendWith } from ${src('../src/wasm/core.ts')};
      import { nodePlatform } from ${src('../src/wasm/platform-node.ts')};
      import { validateVarlen } from ${src('../src/validate.ts')};
      const files = { baseline: new URL(process.argv[2]), relaxed: new URL(process.argv[3]) };
      const b = await createWasmBackendWith(nodePlatform, files, { threads: 2 });
      const t = { data: new Float32Array(300 * 2 * 16).fill(0.5), shape: [300, 2, 16], dtype: 'float32' };
      const r = await b.run(validateVarlen(t, t, t, { cuSeqlensQ: Int32Array.of(0, 300), cuSeqlensK: Int32Array.of(0, 300), causal: true }));
      if (process.argv[4] === 'dispose') await b.dispose();
      console.log('done', r.out.data[0]);
    `,
  );

  for (const mode of ['dispose', 'no-dispose']) {
    it(`the process exits after a call on 2 workers (${mode})`, () => {
      const r = spawnSync(process.execPath, [script(), wasmFiles.baseline.href, wasmFiles.relaxed.href, mode], {
        timeout: 20_000,
        encoding: 'utf8',
      });
      expect(r.error, 'the process did not exit by itself').toBeUndefined();
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout.trim()).toBe('done 0.5');
    });
  }

  it('a disposed engine refuses further calls', async () => {
    const e = await createEngine({ backend: 'wasm', threads: 2 });
    await e.dispose();
    const t: Tensor = { data: new Float32Array(16), shape: [1, 1, 16], dtype: 'float32' };
    await expect(
      e.attentionVarlen(t, t, t, { cuSeqlensQ: Int32Array.of(0, 1), cuSeqlensK: Int32Array.of(0, 1) }),
    ).rejects.toThrow(/disposed/);
  });
});
