// Tensors as users hold them (docs/semantics.md "Inputs"): `{ data, shape }` without dtype for Float32Array,
// a Float16Array as float16 where the runtime has one, and onnxruntime Tensors (onnxruntime-common's
// class, the one onnxruntime-web/-node and transformers.js hand out). Each gives the same result as
// the canonical form, bit for bit; what is not accepted is a TypeError naming the argument.
import { Tensor as OrtTensor } from 'onnxruntime-common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randn, rng } from './conformance/random.js';
import { f32ToF16 } from '../src/half.js';
import { createEngine } from '../src/node.js';
import { tensor } from '../src/tensor.js';
import type { Engine, InputTensor, Tensor } from '../src/types.js';

const [L, H, D] = [37, 4, 32];
const seed = 9001;
const next = rng(seed);
const data = () => randn(next, L * H * D);
const qd = data(),
  kd = data(),
  vd = data();
const shape = [1, L, H, D];
const half = (a: Float32Array) => Uint16Array.from(a, f32ToF16);

let engine: Engine;
beforeAll(async () => {
  engine = await createEngine({ backend: 'wasm', threads: 2 });
});
afterAll(async () => {
  await engine.dispose();
});

const run = async (q: InputTensor, k: InputTensor, v: InputTensor) =>
  (await engine.attention(q, k, v, { causal: true, returnLse: true })) as { out: Tensor; lse: Tensor };

describe(`tensors as users hold them (seed ${seed})`, () => {
  it('a plain { data: Float32Array, shape } is float32 and equals the dtype form bit for bit', async () => {
    const canon = await run(tensor(qd, shape), tensor(kd, shape), tensor(vd, shape));
    const plain = await run({ data: qd, shape }, { data: kd, shape }, { data: vd, shape });
    expect(plain.out.dtype).toBe('float32');
    expect(plain.out.data).toEqual(canon.out.data);
    expect(plain.lse.data).toEqual(canon.lse.data);
  });

  it('onnxruntime Tensors (float32 and float16) give what the same data as our tensors gives', async () => {
    const canon = await run(tensor(qd, shape), tensor(kd, shape), tensor(vd, shape));
    const ort = await run(
      new OrtTensor('float32', qd, shape),
      new OrtTensor('float32', kd, shape),
      new OrtTensor('float32', vd, shape),
    );
    expect(ort.out.data).toEqual(canon.out.data);
    expect(ort.out.shape).toEqual([1, L, H, D]);
    const h = [half(qd), half(kd), half(vd)] as const;
    const canon16 = await run(
      tensor(h[0], shape, 'float16'),
      tensor(h[1], shape, 'float16'),
      tensor(h[2], shape, 'float16'),
    );
    const ort16 = await run(
      new OrtTensor('float16', h[0], shape),
      new OrtTensor('float16', h[1], shape),
      new OrtTensor('float16', h[2], shape),
    );
    expect(ort16.out.dtype).toBe('float16');
    expect(ort16.out.data).toEqual(canon16.out.data);
  });

  it('upload takes the same forms', async () => {
    const kr = await engine.upload({ data: kd, shape }),
      vr = await engine.upload(new OrtTensor('float32', vd, shape));
    try {
      const canon = await run(tensor(qd, shape), tensor(kd, shape), tensor(vd, shape));
      expect((await run({ data: qd, shape }, kr, vr)).out.data).toEqual(canon.out.data);
    } finally {
      kr.dispose();
      vr.dispose();
    }
  });

  it.skipIf(typeof (globalThis as { Float16Array?: unknown }).Float16Array !== 'function')(
    'a Float16Array is float16 (this runtime has one)',
    async () => {
      const F16 = (globalThis as unknown as { Float16Array: new (a: Float32Array) => ArrayBufferView }).Float16Array;
      const canon = await run(
        tensor(half(qd), shape, 'float16'),
        tensor(half(kd), shape, 'float16'),
        tensor(half(vd), shape, 'float16'),
      );
      const f = (a: Float32Array) => ({ data: new F16(a) as never, shape });
      expect((await run(f(qd), f(kd), f(vd))).out.data).toEqual(canon.out.data);
    },
  );

  it('the shape and data are read at the call: reusing the object afterwards changes nothing', async () => {
    const q = { data: qd, shape: [...shape] };
    const pending = run(q, tensor(kd, shape), tensor(vd, shape));
    q.data = new Float32Array(qd.length * 2);
    q.shape[1] = 2 * L;
    const canon = await run(tensor(qd, shape), tensor(kd, shape), tensor(vd, shape));
    expect((await pending).out.data).toEqual(canon.out.data);
  });
});

describe('inputs that are not accepted: a TypeError naming the argument, before any work', () => {
  const k = tensor(kd, shape),
    v = tensor(vd, shape);
  const gpuTensor = {
    type: 'float32',
    dims: shape,
    location: 'gpu-buffer',
    get data(): never {
      throw new Error('not on the CPU');
    },
  };
  const cases: [string, unknown, RegExp, ErrorConstructor?][] = [
    [
      'Uint16Array without dtype',
      { data: half(qd), shape },
      /^Expected dtype 'float16' or 'bfloat16' .* for q\.dtype but received undefined$/,
    ],
    [
      'Float64Array',
      { data: Float64Array.from(qd), shape },
      /^Expected a Float32Array, Float16Array or Uint16Array for q\.data but received Float64Array/,
    ],
    ['number[] data', { data: Array.from(qd), shape }, /for q\.data but received an array of length/],
    [
      'onnxruntime int32 Tensor',
      new OrtTensor('int32', new Int32Array(L * H * D), shape),
      /^Expected an onnxruntime Tensor of type 'float32' or 'float16' for q\.type but received "int32"$/,
    ],
    [
      'onnxruntime float64 Tensor',
      new OrtTensor('float64', Float64Array.from(qd), shape),
      /for q\.type but received "float64"/,
    ],
    [
      'onnxruntime Tensor on the GPU',
      gpuTensor,
      /on the CPU .*getData\(\).* for q\.location but received "gpu-buffer"$/,
    ],
    [
      'onnxruntime Tensor of the wrong rank',
      new OrtTensor('float32', qd, [L * H * D]),
      /^Expected a shape of rank 4 for q\.shape/,
      RangeError,
    ],
  ];
  for (const [name, q, message, kind = TypeError] of cases)
    it(name, async () => {
      const err = await engine.attention(q as InputTensor, k, v).then(
        () => null,
        (e: Error) => e,
      );
      expect(err).toBeInstanceOf(kind);
      expect(err!.message).toMatch(message);
    });
  it('tensor() checks its data against the shape', () => {
    expect(() => tensor(qd, [1, 2, 3])).toThrow(RangeError);
    expect(() => tensor(half(qd), shape)).toThrow(TypeError);
  });
});
