// Engine selection: auto falls back to wasm and says why; a forced backend that cannot load says what it tried.
import { describe, expect, it } from 'vitest';
import { createEngine } from '../src/node.js';
import { tensor } from '../src/tensor.js';

describe('createEngine', () => {
  it('rejects bad engine options', async () => {
    await expect(createEngine({ backend: 'webgpu' as 'wasm' })).rejects.toThrow(RangeError);
    await expect(createEngine({ threads: 0 })).rejects.toThrow(
      /^Expected an integer from 1 to 256 for options.threads but received 0$/,
    );
  });

  it('bounds threads, refuses wrong types and misspelt options, and an invalid FLASHATTN_BACKEND', async () => {
    await expect(createEngine({ threads: 100000 })).rejects.toThrow(
      /^Expected an integer from 1 to 256 for options.threads but received 100000$/,
    );
    await expect(createEngine({ threads: '4' as never })).rejects.toThrow(TypeError);
    await expect(createEngine({ backend: 4 as never })).rejects.toThrow(TypeError);
    await expect(createEngine({ thread: 2 } as never)).rejects.toThrow(
      /options.thread but received an unknown key; did you mean 'threads'\?/,
    );
    const { readKnobs } = await import('../src/knobs.js');
    expect(readKnobs({ FLASHATTN_BACKEND: 'gpu' }).errors).toEqual([
      `Expected 'auto', 'wasm', 'cuda' for FLASHATTN_BACKEND but received "gpu"`,
    ]);
    expect(readKnobs({ FLASHATTN_BACKEND: 'wasm' }).knobs.backend).toBe('wasm');
  });

  it('a disposed engine refuses every later call with a TypeError naming the method', async () => {
    const engine = await createEngine({ backend: 'wasm', threads: 1 });
    await engine.dispose();
    await engine.dispose();
    const t = tensor(new Float32Array(8), [1, 1, 1, 8]);
    await expect(engine.attention(t, t, t)).rejects.toThrow(
      /^Expected an engine that is not disposed for engine.attention but received a disposed wasm engine/,
    );
    await expect(engine.upload(t)).rejects.toThrow(TypeError);
    expect(() => engine.supports(t, t, t)).toThrow(TypeError);
  });

  it("'auto' gives cuda where it loads, else wasm with the reason", async () => {
    const engine = await createEngine({ threads: 1 });
    try {
      if (engine.backend === 'wasm') expect(engine.fallbackReason).toMatch(/^cuda: /);
      else expect(engine.fallbackReason).toBeUndefined();
    } finally {
      await engine.dispose();
    }
  });

  it("'cuda' without a usable addon or GPU fails with one error naming the backend", async () => {
    const engine = await createEngine({ backend: 'cuda' }).catch((e: Error) => e);
    if (engine instanceof Error) expect(engine.message).toMatch(/^flashattn: backend 'cuda' could not be loaded: /);
    else await engine.dispose();
  });

  it('tensor() infers float32 and needs a dtype for Uint16Array', () => {
    expect(tensor(new Float32Array(2), [2]).dtype).toBe('float32');
    expect(() => tensor(new Uint16Array(2), [2])).toThrow(TypeError);
    expect(tensor(new Uint16Array(2), [2], 'bfloat16').dtype).toBe('bfloat16');
  });

  it('the wasm engine rejects device tensors with the fix in the message', async () => {
    const engine = await createEngine({ backend: 'wasm', threads: 1 });
    try {
      const dev = { shape: [1, 1, 8], dtype: 'float16', location: 'cuda', dispose() {} } as const;
      await expect(
        engine.attentionVarlen(dev, dev, dev, { cuSeqlensQ: Int32Array.of(0, 1), cuSeqlensK: Int32Array.of(0, 1) }),
      ).rejects.toThrow(/download\(\)/);
      const r = await engine.upload(tensor(new Float32Array(1), [1]));
      expect(r.location).toBe('wasm'); // resident in the wasm memory (test/wasm-engine.test.ts)
      r.dispose();
    } finally {
      await engine.dispose();
    }
  });
});
