// Results of calls from plain typed arrays on the cuda engine: from 1 MiB on they are page-locked arrays
// from the addon's pool (csrc/pinned.h), filled by one DMA. They must equal a call into a plain `out` bit
// for bit, with every element written even when the pooled block held an earlier result, and the pool must
// keep the memory bounded over many calls. Skips without a GPU, with the reason.
import { afterAll, describe, expect, it } from 'vitest';
import { firstDiff } from './conformance/kvcache.js';
import { randn, rng } from './conformance/random.js';
import { cudaAddon } from '../src/cuda/backend.js';
import { encode } from '../src/half.js';
import { cudaEngineOrReason, inChildWithGc } from './cuda-helpers.js';
import type { Tensor, VarlenOptions } from '../src/types.js';

const { engine, reason } = await cudaEngineOrReason('cuda result array tests');
afterAll(async () => {
  await engine?.dispose();
});
const e = () => engine!;
const seed = 4242;
const held: unknown[] = [];
const next = rng(seed);
const tensor = (shape: number[]): Tensor => ({
  data: encode(
    randn(
      next,
      shape.reduce((a, b) => a * b, 1),
    ),
    'bfloat16',
  ),
  shape,
  dtype: 'bfloat16',
});

describe.skipIf(!engine)(`cuda result arrays${engine ? '' : ` (skipped: ${reason})`}`, () => {
  it(`a 1 MiB result is page-locked and equals a call into a plain out bit for bit (seed ${seed})`, async () => {
    const [L, H, D] = [1024, 8, 64]; // out: 1024 x 8 x 64 bfloat16 = 1 MiB
    const opts: VarlenOptions = {
      cuSeqlensQ: Int32Array.of(0, 300, L),
      cuSeqlensK: Int32Array.of(0, 300, L),
      causal: true,
    };
    const [q, k, v] = [tensor([L, H, D]), tensor([L, 2, D]), tensor([L, 2, D])];
    const before = cudaAddon()!.livePinnedBytes();
    const r = await e().attentionVarlen(q, k, v, opts);
    held.push(r.out); // kept: no pinned array of this file is collected while the next test counts
    expect(r.out.data).toBeInstanceOf(Uint16Array);
    expect(cudaAddon()!.livePinnedBytes() - before).toBeGreaterThanOrEqual(L * H * D * 2);
    const into: Tensor = { data: new Uint16Array(L * H * D).fill(0x7fff), shape: [L, H, D], dtype: 'bfloat16' };
    await e().attentionVarlen(q, k, v, { ...opts, out: into });
    expect(firstDiff(r.out as Tensor, into)).toBe(-1);
  });

  it('a result under 1 MiB is a plain array', async () => {
    const [L, H, D] = [100, 4, 64];
    const opts: VarlenOptions = { cuSeqlensQ: Int32Array.of(0, L), cuSeqlensK: Int32Array.of(0, L) };
    const before = cudaAddon()!.livePinnedBytes();
    const r = await e().attentionVarlen(tensor([L, H, D]), tensor([L, H, D]), tensor([L, H, D]), opts);
    expect(r.out.shape).toEqual([L, H, D]);
    expect(cudaAddon()!.livePinnedBytes()).toBe(before);
  });

  it('pooled blocks are reused, hold earlier results and are overwritten whole; memory stays bounded', () => {
    // In a child process with --expose-gc, through the built package.
    const { peak, mismatches } = inChildWithGc(`
      const base = addon.livePinnedBytes();
      const [L, H, D] = [2048, 16, 128]; // out: 8 MiB of float16
      const opts = { cuSeqlensQ: Int32Array.of(0, L), cuSeqlensK: Int32Array.of(0, L), causal: true };
      const make = (seed, n) => { const a = new Uint16Array(n); for (let i = 0; i < n; i++) a[i] = 0x3000 + ((i * 7919 + seed * 104729) % 0x0c00); return a; };
      let peak = 0, mismatches = 0;
      const loop = async () => { for (let i = 0; i < 40; i++) {
        const q = { data: make(i, L * H * D), shape: [L, H, D], dtype: 'float16' };
        const k = { data: make(i + 1, L * 4 * D), shape: [L, 4, D], dtype: 'float16' };
        const v = { data: make(i + 2, L * 4 * D), shape: [L, 4, D], dtype: 'float16' };
        const r = await engine.attentionVarlen(q, k, v, opts);
        if (i % 8 === 0) {
          const into = { data: new Uint16Array(L * H * D).fill(0x7fff), shape: [L, H, D], dtype: 'float16' };
          await engine.attentionVarlen(q, k, v, { ...opts, out: into });
          for (let j = 0; j < into.data.length; j++) if (into.data[j] !== r.out.data[j]) { mismatches++; break; }
        }
        peak = Math.max(peak, addon.livePinnedBytes() - base);
        globalThis.gc();
        await new Promise((res) => setImmediate(res));
      } };
      await loop();
      console.log(JSON.stringify({ peak, mismatches }));
    `);
    expect(mismatches).toBe(0);
    expect(peak).toBeLessThanOrEqual(4 * (8 << 20)); // collected and reused as the loop goes, not 40 kept
  });
});
