// The CUDA engine's own tests: loading and its reasons, device tensors (upload, download,
// dispose, finalizer-owned memory), CUDA errors as JS errors, the timing hook, and every kernel
// path (bench/gpu/paths.mjs: split-KV on/off, both tiles, mma.sync on Hopper, block orders, each
// set with setKnobs) on the shared cases plus larger ones. The shared conformance cases on host
// and device tensors run in conformance.test.ts. Without a GPU (or without the addon built) only
// the loader tests and the check of the paths list run; the rest skip with the loader's reason.
import v8 from 'node:v8';
import vm from 'node:vm';
import { afterAll, describe, expect, it } from 'vitest';
import { cudaKernelPaths } from '../bench/gpu/paths.mjs';
import { caseId, cases, largeCases } from './conformance/cases.js';
import { freshSeed } from './conformance/random.js';
import { runCase } from './conformance/run.js';
import { addonCandidates, cudaAddon, loadCudaBackend } from '../src/cuda/backend.js';
import { encode, decode } from '../src/half.js';
import { knobs, setKnobs, type Knobs } from '../src/knobs.js';
import { createEngine } from '../src/node.js';
import { cudaEngineOrReason } from './cuda-helpers.js';
import type { Tensor } from '../src/types.js';
import { validateVarlen } from '../src/validate.js';

const { engine, reason } = await cudaEngineOrReason('cuda engine tests');
const gpu = engine !== null;
const seed = freshSeed();

afterAll(async () => {
  await engine?.dispose();
});

describe('cuda loader', () => {
  it.skipIf(gpu)('says what it tried and why it cannot run', async () => {
    expect(reason).toMatch(
      /addon is not installed|no NVIDIA driver|NVIDIA driver supports CUDA|no CUDA device|no usable CUDA device/,
    );
    if (/addon is not installed/.test(reason)) {
      for (const c of addonCandidates()) expect(reason).toContain(c.path ?? c.from);
      expect(reason).toMatch(/build-cuda/);
    }
    await expect(createEngine({ backend: 'cuda' })).rejects.toThrow(/backend 'cuda' could not be loaded/);
  });

  it.skipIf(gpu)('a built addon loads and reports the missing device instead of crashing', () => {
    let addon: ReturnType<typeof cudaAddon>;
    try {
      addon = cudaAddon();
    } catch {
      return;
    } // not built here: nothing more to check
    const info = addon.deviceInfo();
    expect(info.error).toMatch(/cudaGetDeviceCount|no CUDA device/);
    // Where no driver is installed at all the reason says so plainly, not in the runtime's words.
    if (info.driverVersion === 0)
      expect(reason).toMatch(/no NVIDIA driver is installed .*\(addon from a local build: /);
    else expect(reason).toMatch(/NVIDIA driver supports CUDA|no CUDA device/);
  });
});

describe('cuda kernel paths', () => {
  it('are knob changes (bench/gpu/paths.mjs is plain JavaScript: its names are checked here)', () => {
    expect(cudaKernelPaths.length).toBeGreaterThan(0);
    for (const [name, changes] of cudaKernelPaths)
      for (const [key, value] of Object.entries(changes)) {
        expect(Object.keys(knobs), name).toContain(key);
        expect(typeof value, `${name}: ${key}`).toBe(typeof knobs[key as keyof Knobs]);
      }
  });
});

describe.skipIf(!gpu)(`cuda engine${gpu ? '' : ` (skipped: ${reason})`}`, () => {
  const e = () => engine!;

  it('round-trips tensors through the device and frees them on dispose', async () => {
    for (const dtype of ['float32', 'float16', 'bfloat16'] as const) {
      const values = Float32Array.from({ length: 3 * 5 * 7 }, (_, i) => Math.sin(i) * 100);
      const t: Tensor = { data: encode(values, dtype), shape: [3, 5, 7], dtype };
      const d = await e().upload(t);
      expect(d.location).toBe('cuda');
      expect(d.shape).toEqual([3, 5, 7]);
      const back = await e().download(d);
      expect(back.dtype).toBe(dtype);
      expect(Array.from(decode(back.data, dtype))).toEqual(Array.from(decode(t.data, dtype)));
      const live = cudaAddon().liveBytes();
      d.dispose();
      expect(cudaAddon().liveBytes()).toBe(live - values.length * (dtype === 'float32' ? 4 : 2));
      await expect(e().download(d)).rejects.toThrow(/disposed/);
      await expect(e().download({ ...d })).rejects.toThrow(/device tensor made by this engine/);
    }
    const empty = await e().upload({ data: new Float32Array(0), shape: [0, 4], dtype: 'float32' });
    expect((await e().download(empty)).data.length).toBe(0);
  });

  it('leaves forgotten device tensors to the finalizer', async () => {
    v8.setFlagsFromString('--expose_gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const settle = async () => {
      for (let i = 0; i < 3; i++) {
        gc();
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    await settle(); // earlier tests' garbage first, so only this test's tensors come and go
    const before = cudaAddon().liveBytes();
    // Held until every upload is done (V8 may collect earlier ones while later ones upload),
    // then forgotten: only the finalizer can free them.
    let held: unknown[] | null = [];
    for (let i = 0; i < 8; i++)
      held.push(await e().upload({ data: new Float32Array(4 << 20), shape: [4 << 20], dtype: 'float32' }));
    expect(cudaAddon().liveBytes()).toBe(before + 8 * (16 << 20));
    held = null;
    for (let i = 0; i < 10 && cudaAddon().liveBytes() > before; i++) {
      gc();
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(cudaAddon().liveBytes()).toBe(before);
  });

  it('turns CUDA errors into rejected promises with the CUDA message', async () => {
    const ctx = new (cudaAddon().Context)();
    await expect(cudaAddon().allocDevice(ctx, 2 ** 52)).rejects.toThrow(/cudaErrorMemoryAllocation|out of memory/);
    await ctx.dispose();
    // The engine still works afterwards.
    const r = await runCase(e(), cases[0]!, seed);
    expect(r.ok, r.detail).toBe(true);
  });

  it('returns device tensors for device inputs', async () => {
    const q = await e().upload({
      data: encode(new Float32Array(37 * 2 * 64).fill(0.5), 'float16'),
      shape: [37, 2, 64],
      dtype: 'float16',
    });
    const k = await e().upload({
      data: encode(new Float32Array(53 * 2 * 64).fill(0.25), 'float16'),
      shape: [53, 2, 64],
      dtype: 'float16',
    });
    const v = await e().upload({
      data: encode(new Float32Array(53 * 2 * 64).fill(2), 'float16'),
      shape: [53, 2, 64],
      dtype: 'float16',
    });
    const r = await e().attentionVarlen(q, k, v, {
      cuSeqlensQ: Int32Array.of(0, 37),
      cuSeqlensK: Int32Array.of(0, 53),
      returnLse: true,
    });
    expect(r.out.location).toBe('cuda');
    expect(r.lse?.location).toBe('cuda');
    const out = decode((await e().download(r.out)).data, 'float16');
    expect(out.every((x) => x === 2)).toBe(true); // constant V: every weight average is 2
    for (const t of [q, k, v, r.out, r.lse!]) t.dispose();
  });

  it('times the kernel through the addon hook', async () => {
    const backend = await loadCudaBackend();
    const n = 1024,
      h = 8,
      d = 128;
    const data = encode(
      Float32Array.from({ length: n * h * d }, (_, i) => Math.cos(i)),
      'bfloat16',
    );
    // Tensors of the backend's own engine (each engine has its own stream).
    const t = await backend.upload!({ data, shape: [n, h, d], dtype: 'bfloat16' });
    const p = validateVarlen(t, t, t, {
      cuSeqlensQ: Int32Array.of(0, n),
      cuSeqlensK: Int32Array.of(0, n),
      causal: true,
    });
    const info = await backend.time(p, 5);
    expect(info.kernelMs).toBeGreaterThan(0);
    expect(info.headDimClass).toBe(128);
    t.dispose();
  });

  it('plans the Hopper kernel for head-dim classes 64 and 128 on sm_90 only, with or without the fast copy', async () => {
    const backend = await loadCudaBackend();
    const hopper = backend.info.computeCapability === '9.0';
    const n = 300,
      h = 4;
    type Opts = { softcap?: number; softmaxScale?: number; alibiSlopes?: Float32Array; dv?: number };
    const planOf = async (d: number, opts: Opts = {}, changes: Partial<Knobs> = {}, dtype = 'float16' as const) => {
      const { dv = d, ...rest } = opts;
      const make = async (dim: number) =>
        backend.upload!({
          data: encode(
            Float32Array.from({ length: n * h * dim }, (_, i) => Math.sin(i)),
            dtype,
          ),
          shape: [n, h, dim],
          dtype,
        });
      const t = await make(d);
      const tv = dv === d ? t : await make(dv);
      const restore = setKnobs(changes);
      try {
        const p = validateVarlen(t, t, tv, {
          cuSeqlensQ: Int32Array.of(0, n),
          cuSeqlensK: Int32Array.of(0, n),
          causal: true,
          ...rest,
        });
        const info = await backend.time(p, 1);
        return `${info.tile}${info.full ? '' : ' general'}`;
      } finally {
        restore();
        t.dispose();
        if (tv !== t) tv.dispose();
      }
    };
    const wg = hopper ? 'wgmma' : 'main';
    expect(await planOf(64)).toBe(wg);
    expect(await planOf(128)).toBe(wg);
    expect(await planOf(128, { softcap: 20 })).toBe(`${wg} general`);
    expect(await planOf(64, { alibiSlopes: Float32Array.of(0.5, 0.25, 0.125, 0.0625) })).toBe(`${wg} general`);
    expect(await planOf(128, { softmaxScale: -0.1 })).toBe(`${wg} general`);
    expect(await planOf(96)).toBe(`${wg} general`); // padded head dim
    expect(await planOf(40)).toBe(`${wg} general`);
    expect(await planOf(128, { dv: 64 })).toBe(`${wg} general`); // Dv != D in one class
    expect(await planOf(256)).toBe('main');
    expect(await planOf(192, { dv: 128 })).toBe('main general');
    expect(await planOf(64, {}, { cudaWgmma: false })).toBe('main');
    expect(await planOf(128, { softcap: 20 }, { cudaWgmma: false })).toBe('main general');
    expect(await planOf(64, {}, { cudaTile: 'main' })).toBe('main');
  });

  // Every other kernel path on the shared cases (the default plan runs in conformance.test.ts).
  for (const [name, changes] of cudaKernelPaths) {
    it(`passes the shared cases with ${name}`, async () => {
      const restore = setKnobs(changes);
      try {
        const failures: string[] = [];
        for (let i = 0; i < cases.length; i++) {
          // float32 cases with precision 'float16': the tensor-core kernels (by default they run in float32).
          const r = await runCase(e(), cases[i]!, seed + i, { device: i % 2 === 1, precision: 'float16' });
          if (!r.ok) failures.push(`${r.id}: ${r.detail}`);
        }
        expect(failures, `seed ${seed}`).toEqual([]);
      } finally {
        restore();
      }
    });
  }

  for (const c of largeCases) {
    it(`larger case ${caseId(c)}`, async () => {
      const r = await runCase(e(), c, seed);
      expect(r.ok, `${r.detail}; seed ${seed}`).toBe(true);
      const rd = await runCase(e(), c, seed + 1, { device: true });
      expect(rd.ok, `device tensors: ${rd.detail}; seed ${seed + 1}`).toBe(true);
    }, 120_000);
  }
});
