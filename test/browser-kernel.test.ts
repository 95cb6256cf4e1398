// The browser loader's pieces that do not need a browser, run in Node: the memory-import rewrite
// that lets one thread run without a shared memory, the relaxed-SIMD probe, the options.wasm checks,
// core.ts driving a CompiledKernel on an unshared memory through a few conformance cases, and the
// built browser entry in a runtime without Web Workers (Node has no global Worker: an edge runtime).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { cases } from './conformance/cases.js';
import { runCase } from './conformance/run.js';
import { engineFromBackend } from '../src/engine.js';
import { createWasmBackendWith } from '../src/wasm/core.js';
import { checkSources } from '../src/wasm/kernel-browser.js';
import { nodePlatform } from '../src/wasm/platform-node.js';
import { relaxedSimdSupported, unshareMemoryImport } from '../src/wasm/unshare.js';

const file = (name: string) => new Uint8Array(readFileSync(new URL(`../build/wasm/${name}`, import.meta.url)));
const env = (shared: boolean) => ({ env: { memory: new WebAssembly.Memory({ initial: 64, maximum: 65536, shared }) } });

describe('the wasm kernel for browsers', () => {
  it('unshareMemoryImport flips exactly the shared bit of the memory import', () => {
    const bytes = file('flashattn.wasm');
    const u = unshareMemoryImport(bytes);
    expect(u).not.toBe(bytes);
    expect(u.length).toBe(bytes.length);
    expect(u.reduce((n, b, i) => n + (b !== bytes[i] ? 1 : 0), 0)).toBe(1);
    expect(() => new WebAssembly.Instance(new WebAssembly.Module(bytes), env(false))).toThrow(/shared/);
    expect(new WebAssembly.Instance(new WebAssembly.Module(u), env(false)).exports).toHaveProperty('run');
    expect(unshareMemoryImport(u)).toEqual(u); // already unshared: unchanged
    expect(() => unshareMemoryImport(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]))).toThrow(TypeError);
  });

  it('the relaxed-SIMD probe agrees with validating the relaxed build', () => {
    expect(relaxedSimdSupported()).toBe(WebAssembly.validate(file('flashattn-relaxed.wasm')));
  });

  it('options.wasm is checked with the usual message', () => {
    expect(() => checkSources({ baseline: 42 })).toThrow(
      'Expected a URL, bytes or a WebAssembly.Module for options.wasm.baseline but received number',
    );
    expect(() => checkSources({})).toThrow(/options\.wasm\.baseline/);
    expect(() => checkSources({ baseline: new Uint8Array(8), relaxed: null })).toThrow(
      /options\.wasm\.relaxed but received null/,
    );
    expect(() => checkSources({ baseline: 'x.wasm', relaxed: new URL('file:///y.wasm') })).not.toThrow();
  });

  it('core.ts runs a CompiledKernel on an unshared memory (one thread) and passes conformance cases', async () => {
    const module = new WebAssembly.Module(unshareMemoryImport(file('flashattn.wasm')));
    const kernel = { module, simd: 'baseline' as const, source: 'test bytes' };
    await expect(createWasmBackendWith(nodePlatform, kernel, { threads: 2, sharedMemory: false })).rejects.toThrow(
      RangeError,
    );
    const engine = engineFromBackend(
      await createWasmBackendWith(nodePlatform, kernel, { threads: 1, sharedMemory: false }),
    );
    expect(engine.info['wasm']).toBe('test bytes');
    for (const [i, c] of cases.slice(0, 12).entries()) {
      const r = await runCase(engine, c, 100 + i);
      expect(r.ok, `${r.id}: ${r.detail}`).toBe(true);
    }
    await engine.dispose();
  });

  it('the built browser entry without Web Workers computes on the calling thread, from bytes or a module', async () => {
    const entry = await import('../dist/browser.js');
    const [q, k, v] = [1, 2, 3].map((s) =>
      entry.tensor(
        Float32Array.from({ length: 70 * 2 * 64 }, (_, i) => Math.sin(i * 0.1 + s)),
        [1, 70, 2, 64],
      ),
    );
    const baseline = file('flashattn.wasm');
    for (const wasm of [{ baseline }, { baseline: new WebAssembly.Module(baseline) }]) {
      const engine = await entry.createEngine({ wasm });
      expect(engine.backend).toBe('wasm');
      expect(engine.threads).toBe(1);
      expect(engine.info).toMatchObject({
        runsOn: 'calling thread',
        sharedMemory: wasm.baseline instanceof WebAssembly.Module,
      });
      expect(engine.info['threadsReason']).toMatch(/no Web Workers/);
      expect(engine.fallbackReason).toMatch(/cuda engine needs Node/);
      const got = await engine.attention(q, k, v, { causal: true });
      const ref = entry.referenceAttention(q, k, v, { causal: true });
      const err = ref.out64.reduce((m, r, i) => Math.max(m, Math.abs((got.out.data[i] as number) - r)), 0);
      expect(err).toBeLessThan(1e-4);
      await engine.dispose();
    }
    // The default is the files next to the package, which Node's fetch cannot read (file:): the error says what to do.
    await expect(entry.createEngine({ backend: 'wasm' })).rejects.toThrow(
      /build\/wasm\/flashattn\.wasm.*pass createEngine\(\{ wasm/,
    );
    await expect(entry.createEngine({ wasm: { baseline: 7 } as never })).rejects.toThrow(TypeError);
  });
});
