// engine.mergeAttention on the cuda engine's device results (cuda/aux_kernels.cu mergeParts): attention over
// a sequence's keys split in three parts (one of them empty for some rows: lse -Infinity), merged on the GPU,
// against the host mergeAttention of the same parts downloaded and against attention over all the keys;
// special lse values (-Infinity everywhere, +Infinity, NaN) as the host merge treats them; bad parts refused.
// Skips without a GPU, with the reason.
import { afterAll, describe, expect, it } from 'vitest';
import { decode, encode } from '../src/half.js';
import { mergeAttention } from '../src/merge.js';
import { createEngine } from '../src/node.js';
import { cudaEngineOrReason } from './cuda-helpers.js';
import type { DeviceTensor, Tensor } from '../src/types.js';
import { randn, rng } from './conformance/random.js';

const { engine, reason } = await cudaEngineOrReason('cuda merge tests');
afterAll(async () => {
  await engine?.dispose();
});
const e = () => engine!;
const seed = 4242;
const next = rng(seed);
const [H, D] = [4, 64];
const t = (rows: number, heads: number): Tensor => ({
  data: encode(randn(next, rows * heads * D), 'bfloat16'),
  shape: [rows, heads, D],
  dtype: 'bfloat16',
});
const maxDiff = (a: Tensor, b: Tensor) => {
  const x = decode(a.data as Uint16Array | Float32Array, a.dtype),
    y = decode(b.data as Uint16Array | Float32Array, b.dtype);
  let m = 0;
  for (let i = 0; i < x.length; i++) {
    if (Object.is(x[i], y[i])) continue;
    m = Math.max(m, Math.abs(x[i]! - y[i]!));
  }
  return m;
};

describe.skipIf(!engine)(`cuda mergeAttention on device tensors${engine ? '' : ` (skipped: ${reason})`}`, () => {
  it('merges device parts like the host merge and like attention over all the keys', async () => {
    const [lq, lk] = [50, 300];
    const q = await e().upload(t(lq, H));
    const kAll = t(lk, H),
      vAll = t(lk, H);
    // Keys 0..99, 100..249, 250..299, each part over all the queries.
    const slice = (x: Tensor, a: number, b: number): Tensor => ({
      ...x,
      data: (x.data as Uint16Array).slice(a * H * D, b * H * D),
      shape: [b - a, H, D],
    });
    const cuts = [0, 100, 250, lk];
    const parts = [];
    for (let i = 0; i < 3; i++) {
      const [k, v] = await Promise.all([
        e().upload(slice(kAll, cuts[i]!, cuts[i + 1]!)),
        e().upload(slice(vAll, cuts[i]!, cuts[i + 1]!)),
      ]);
      const r = await e().attentionVarlen(q, k, v, {
        cuSeqlensQ: Int32Array.of(0, lq),
        cuSeqlensK: Int32Array.of(0, cuts[i + 1]! - cuts[i]!),
        returnLse: true,
      });
      parts.push({ out: r.out as DeviceTensor, lse: r.lse as DeviceTensor });
    }
    const merged = await e().mergeAttention(parts);
    expect(merged.out.location).toBe('cuda');
    const got = { out: await e().download(merged.out), lse: await e().download(merged.lse) };
    const host = mergeAttention(
      await Promise.all(parts.map(async (p) => ({ out: await e().download(p.out), lse: await e().download(p.lse) }))),
    );
    expect(maxDiff(got.out, host.out)).toBeLessThan(2 ** -7); // one bfloat16 rounding apart at most
    expect(maxDiff(got.lse, host.lse)).toBeLessThan(1e-5);
    const [k, v] = await Promise.all([e().upload(kAll), e().upload(vAll)]);
    const whole = await e().attentionVarlen(q, k, v, {
      cuSeqlensQ: Int32Array.of(0, lq),
      cuSeqlensK: Int32Array.of(0, lk),
      returnLse: true,
    });
    expect(maxDiff(got.out, await e().download(whole.out as DeviceTensor))).toBeLessThan(2 ** -6);
    expect(maxDiff(got.lse, await e().download(whole.lse as DeviceTensor))).toBeLessThan(1e-3);
    for (const x of [k, v, whole.out as DeviceTensor, whole.lse as DeviceTensor]) x.dispose();
    for (const p of parts) {
      p.out.dispose();
      p.lse.dispose();
    }
    merged.out.dispose();
    merged.lse.dispose();
    q.dispose();
  });

  it('treats -Infinity, +Infinity and NaN lse as the host merge does', async () => {
    const rows = 4;
    const outA: Tensor = {
      data: Float32Array.from({ length: rows * 1 * 8 }, (_, i) => i),
      shape: [rows, 1, 8],
      dtype: 'float32',
    };
    const outB: Tensor = {
      data: Float32Array.from({ length: rows * 1 * 8 }, (_, i) => -i),
      shape: [rows, 1, 8],
      dtype: 'float32',
    };
    const lseA: Tensor = {
      data: Float32Array.of(-Infinity, Infinity, Number.NaN, 0),
      shape: [1, rows],
      dtype: 'float32',
    };
    const lseB: Tensor = {
      data: Float32Array.of(-Infinity, Infinity, 1, -Infinity),
      shape: [1, rows],
      dtype: 'float32',
    };
    const up = (x: Tensor) => e().upload(x);
    const parts = [
      { out: await up(outA), lse: await up(lseA) },
      { out: await up(outB), lse: await up(lseB) },
    ];
    const m = await e().mergeAttention(parts);
    const got = { out: await e().download(m.out), lse: await e().download(m.lse) };
    const host = mergeAttention([
      { out: outA, lse: lseA },
      { out: outB, lse: lseB },
    ]);
    expect(Array.from(got.lse.data)).toEqual(Array.from(host.lse.data));
    expect(Array.from(got.out.data)).toEqual(Array.from(host.out.data));
  });

  it('refuses mixed host and device parts, and other engines', async () => {
    const out = await e().upload(t(2, 1));
    const lse = await e().upload({ data: new Float32Array(2), shape: [1, 2], dtype: 'float32' });
    await expect(
      e().mergeAttention([
        { out, lse },
        { out: t(2, 1), lse: { data: new Float32Array(2), shape: [1, 2], dtype: 'float32' } },
      ] as never),
    ).rejects.toThrow(/all host or all device/);
    const wasm = await createEngine({ backend: 'wasm', threads: 1 });
    await expect(wasm.mergeAttention([{ out, lse }])).rejects.toThrow(/download\(\) them first/);
    await wasm.dispose();
    out.dispose();
    lse.dispose();
  });
});
