// Engine selection: auto falls back to wasm and says why; a forced backend that cannot load says what it tried.
import { describe, expect, it } from 'vitest';
import { createEngine } from '../src/node.js';
import { tensor } from '../src/tensor.js';

describe('createEngine', () => {
  it('rejects bad engine options', async () => {
    await expect(createEngine({ backend: 'webgpu' as 'wasm' })).rejects.toThrow(RangeError);
    await expect(createEngine({ threads: 0 })).rejects.toThrow(/integer >= 1 for options.threads/);
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
      await expect(engine.attentionVarlen(dev, dev, dev, { cuSeqlensQ: Int32Array.of(0, 1), cuSeqlensK: Int32Array.of(0, 1) }))
        .rejects.toThrow(/download\(\)/);
      const r = await engine.upload(tensor(new Float32Array(1), [1]));
      expect(r.location).toBe('wasm'); // resident in the wasm memory (test/wasm-engine.test.ts)
      r.dispose();
    } finally {
      await engine.dispose();
    }
  });
});
