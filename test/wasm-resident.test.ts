// The wasm engine's resident tensors (engine.upload): the host path's bits at every thread count,
// a decode loop with K and V kept across calls, refusals of other engines' tensors, and the finalizer
// that frees forgotten ones. Needs `npm run build:wasm`.
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { caseId, splitCases as cases } from './conformance/cases.js';
import { randn, rng } from './conformance/random.js';
import { buildInputs, runCase, runEngine } from './conformance/run.js';
import type { Backend } from '../src/backend.js';
import { engineFromBackend } from '../src/engine.js';
import { createEngine } from '../src/node.js';
import type { AnyTensor, Engine, Tensor } from '../src/types.js';
import { wasmFiles } from '../src/wasm/backend.js';
import { bundledScript, firstDiff } from './wasm-helpers.js';

describe('wasm resident tensors', () => {
  const engines = new Map<number, Engine>();
  beforeAll(async () => {
    for (const t of [1, 2]) engines.set(t, await createEngine({ backend: 'wasm', threads: t }));
  });
  afterAll(async () => {
    for (const e of engines.values()) await e.dispose();
  });
  const residentOf = (e: Engine) =>
    (e as unknown as { impl: { resident: { bytes: number; count: number } } }).impl.resident;

  /** Runs a case with the inputs in `which` uploaded first (and disposed after). */
  async function runResident(e: Engine, x: ReturnType<typeof buildInputs>, which: readonly ('q' | 'k' | 'v')[]) {
    const up = { q: x.q as AnyTensor, k: x.k as AnyTensor, v: x.v as AnyTensor };
    for (const n of which) up[n] = await e.upload(x[n]);
    try {
      const { cuSeqlensQ: _q, cuSeqlensK: _k, ...fixed } = x.options;
      return x.fixed
        ? await e.attention(up.q, up.k, up.v, fixed)
        : await e.attentionVarlen(up.q, up.k, up.v, x.options);
    } finally {
      for (const n of which) (up[n] as { dispose(): void }).dispose();
    }
  }

  // ragged causal, decode with split key ranges (f32, f16), bfloat16 with softcap
  for (const i of [0, 1, 7, 6]) {
    const c = cases[i]!;
    it(`resident inputs give the host path's bits at 1 and 2 threads: ${caseId(c)}`, async () => {
      const x = buildInputs(c, 300 + i);
      const host = await runEngine(engines.get(1)!, x);
      for (const t of [1, 2]) {
        for (const which of [['k', 'v'], ['q', 'k', 'v'], ['q']] as const) {
          const r = await runResident(engines.get(t)!, x, which);
          expect(r.out.location, 'results of resident inputs are host tensors').toBe('cpu');
          expect(firstDiff(r.out as Tensor, host.out as Tensor), `${t} threads, resident ${which.join(',')}`).toBe(-1);
          expect(firstDiff(r.lse as Tensor, host.lse as Tensor), `${t} threads, resident ${which.join(',')}`).toBe(-1);
        }
      }
    });
  }

  it('decode against the reference with K and V resident across calls, uploads and disposals in between', async () => {
    const c = cases[1]!;
    const e = engines.get(2)!;
    const x = buildInputs(c, 42);
    const host = await runEngine(e, x);
    const k = await e.upload(x.k),
      v = await e.upload(x.v);
    const others: { dispose(): void }[] = [];
    try {
      for (let step = 0; step < 4; step++) {
        const qs: Tensor = { ...x.q, data: randn(rng(50 + step), x.q.data.length) }; // a fresh q per step, like decoding
        const want = await e.attentionVarlen(qs, x.k, x.v, x.options);
        const got = await e.attentionVarlen(qs, k, v, x.options);
        expect(firstDiff(got.out as Tensor, want.out as Tensor), `step ${step}`).toBe(-1);
        // blocks come and go around k and v: calls lay themselves out in the gaps
        others.push(
          await e.upload({
            data: new Float32Array(1000 * (step + 1)).fill(step),
            shape: [1000 * (step + 1)],
            dtype: 'float32',
          }),
        );
        if (step % 2 === 1) others.shift()!.dispose();
      }
      const r = await runCase(e, cases[3]!, 43, { device: true }); // every input resident, against the reference
      expect(r.ok, `${r.id}: ${r.detail}`).toBe(true);
      const again = await e.attentionVarlen(x.q, k, v, x.options);
      expect(firstDiff(again.out as Tensor, host.out as Tensor)).toBe(-1);
    } finally {
      k.dispose();
      v.dispose();
      for (const o of others) o.dispose();
    }
  });

  it('download returns the uploaded bits; dispose frees now; a disposed tensor is refused', async () => {
    const e = engines.get(1)!;
    const before = residentOf(e);
    const f32: Tensor = {
      data: Float32Array.from({ length: 777 }, (_, i) => Math.sin(i)),
      shape: [7, 3, 37],
      dtype: 'float32',
    };
    const f16: Tensor = {
      data: Uint16Array.from({ length: 90 }, (_, i) => (i * 977) & 0xffff),
      shape: [3, 2, 15],
      dtype: 'float16',
    };
    const a = await e.upload(f32),
      b = await e.upload(f16);
    expect(a).toMatchObject({ location: 'wasm', dtype: 'float32', shape: [7, 3, 37] });
    expect(residentOf(e).count).toBe(before.count + 2);
    const da = await e.download(a),
      db = await e.download(b);
    expect(da.dtype).toBe('float32');
    expect(firstDiff(da, f32)).toBe(-1);
    expect(db.data).toBeInstanceOf(Uint16Array);
    expect(firstDiff(db, f16)).toBe(-1);
    a.dispose();
    a.dispose(); // twice is harmless
    expect(residentOf(e).count).toBe(before.count + 1);
    await expect(e.download(a)).rejects.toThrow(/disposed/);
    const q: Tensor = { data: new Float32Array(3 * 37), shape: [1, 3, 37], dtype: 'float32' };
    await expect(
      e.attentionVarlen(q, a, a, { cuSeqlensQ: Int32Array.of(0, 1), cuSeqlensK: Int32Array.of(0, 7) }),
    ).rejects.toThrow(TypeError);
    b.dispose();
    expect(residentOf(e)).toEqual(before);
  });

  it('refuses resident tensors of another engine, copies, cuda mixes and bad uploads with the fix', async () => {
    const [e1, e2] = [engines.get(1)!, engines.get(2)!];
    const x = buildInputs(cases[1]!, 9);
    const k = await e1.upload(x.k),
      v = await e1.upload(x.v);
    try {
      await expect(e2.attentionVarlen(x.q, k, v, x.options)).rejects.toThrow(/another engine; download\(\)/);
      await expect(e2.download(k)).rejects.toThrow(TypeError);
      await expect(e1.attentionVarlen(x.q, { ...k }, v, x.options)).rejects.toThrow(
        /made by this wasm engine's upload\(\)/,
      );
      await expect(e1.upload(k as unknown as Tensor)).rejects.toThrow(/download\(\)/);
      await expect(e1.upload({ data: new Float32Array(3), shape: [2, 2], dtype: 'float32' })).rejects.toThrow(
        RangeError,
      );
      await expect(e1.upload({ data: new Float32Array(4), shape: [2, 2], dtype: 'float16' })).rejects.toThrow(
        TypeError,
      );
      // cuda tensors still do not mix with host or resident ones
      const dev = { shape: k.shape, dtype: 'float32', location: 'cuda', dispose() {} } as const;
      await expect(e1.attentionVarlen(x.q, dev, x.v, x.options)).rejects.toThrow(
        'Expected a tensor on \'cpu\' like q for k.location but received "cuda"',
      );
      await expect(e1.attentionVarlen(x.q, k, dev, x.options)).rejects.toThrow(TypeError);
      // an engine without resident tensors (the cuda engine) names the fix
      const fakeCuda: Backend = {
        name: 'cuda',
        threads: 1,
        info: {},
        unsupported: () => null,
        run: async () => {
          throw new Error('must not run');
        },
        dispose: async () => {},
        download: async () => {
          throw new Error('must not download');
        },
      };
      const cuda = engineFromBackend(fakeCuda);
      await expect(cuda.attentionVarlen(x.q, k, v, x.options)).rejects.toThrow(
        /host or cuda tensor for k .*download\(\) it/,
      );
      await expect(cuda.download(k)).rejects.toThrow(/download\(\) it from that engine/);
    } finally {
      k.dispose();
      v.dispose();
    }
  });
});

describe('wasm resident tensors: finalizer', () => {
  // A child process (bundled from src/ with esbuild, run with --expose-gc) forgets resident tensors.
  const script = bundledScript(
    'flashattn-wasm-gc-',
    (src) => `
      import { createWasmBackendWith } from ${src('../src/wasm/core.ts')};
      import { nodePlatform } from ${src('../src/wasm/platform-node.ts')};
      const files = { baseline: new URL(process.argv[2]), relaxed: new URL(process.argv[3]) };
      const b = await createWasmBackendWith(nodePlatform, files, { threads: 1 });
      const kept = await b.upload({ data: new Float32Array(1000), shape: [1000], dtype: 'float32' });
      await (async () => {
        for (let i = 0; i < 5; i++) await b.upload({ data: new Float32Array(100000), shape: [100000], dtype: 'float32' });
      })();
      const counts = [b.resident.count];
      for (let i = 0; i < 20 && b.resident.count > 1; i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 10)); }
      counts.push(b.resident.count, b.resident.bytes);
      kept.dispose();
      counts.push(b.resident.count);
      console.log(counts.join(' '));
    `,
  );

  it('frees the blocks of tensors nobody disposed once they are collected', () => {
    const r = spawnSync(process.execPath, ['--expose-gc', script(), wasmFiles.baseline.href, wasmFiles.relaxed.href], {
      timeout: 20_000,
      encoding: 'utf8',
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('6 1 4000 0');
  });
});
