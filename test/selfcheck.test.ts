// The installed package's own checks (flashattn doctor / demo, src/cli/selfcheck.ts) and the public
// predicate they use (engine.supports): they pass on a correct engine, fail on one that is off by
// a little, and skip, with the engine's reason, what an engine cannot run.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend } from '../src/backend.js';
import {
  BAD_CALLS,
  SELF_CHECKS,
  badCallError,
  compareEngines,
  runSelfCheck,
  selfCheckInputs,
} from '../src/cli/selfcheck.js';
import { runKvSelfCheck } from '../src/cli/selfcheck-kv.js';
import { engineFromBackend } from '../src/engine.js';
import { createEngine } from '../src/node.js';
import type { Engine, Tensor } from '../src/types.js';

let wasm: Engine;
beforeAll(async () => {
  wasm = await createEngine({ backend: 'wasm', threads: 2 });
});
afterAll(async () => {
  await wasm.dispose();
});

/** A façade over the wasm engine's backend whose outputs are moved by `delta`, or that refuses everything. */
async function skewed(
  delta: number,
  refuse: string | null = null,
): Promise<{ engine: Engine; close: () => Promise<void> }> {
  const { createWasmBackend } = await import('../src/wasm/backend.js');
  const inner = await createWasmBackend({ threads: 1 });
  const skew = <R extends { out: unknown }>(r: R): R => {
    const o = r.out as Tensor;
    if (o.data instanceof Float32Array) for (let i = 0; i < o.data.length; i += 7) o.data[i]! += delta;
    else for (let i = 0; i < o.data.length; i += 7) o.data[i] ^= 0x40; // a few half ulps off
    return r;
  };
  const b: Backend = {
    name: 'wasm',
    threads: 1,
    info: inner.info,
    checkInputs: inner.checkInputs?.bind(inner),
    unsupported: (p) => refuse ?? inner.unsupported(p),
    run: async (p) => skew(await inner.run(p)),
    createKvCache: inner.createKvCache?.bind(inner),
    writeKvCache: inner.writeKvCache?.bind(inner),
    attentionWithKvCache: async (p) => skew(await inner.attentionWithKvCache!(p)),
    download: inner.download?.bind(inner),
    dispose: () => inner.dispose(),
  };
  return { engine: engineFromBackend(b), close: () => inner.dispose() };
}

describe('self-checks', () => {
  it('every check passes on the wasm engine, through the public API', async () => {
    for (const [i, c] of SELF_CHECKS.entries()) {
      const r = await runSelfCheck(wasm, c, 100 + i);
      expect(r.ok, `${r.name}: ${r.detail}`).toBe(true);
      expect(r.skipped).toBeUndefined();
    }
  });

  it('the KV cache check passes on the wasm engine and fails on one whose outputs are off', async () => {
    for (const dtype of ['float32', 'float16', 'bfloat16'] as const) {
      const r = await runKvSelfCheck(wasm, dtype, 5);
      expect(r.ok, r.detail).toBe(true);
    }
    const bad = await skewed(3e-4);
    try {
      for (const dtype of ['float32', 'float16'] as const)
        expect((await runKvSelfCheck(bad.engine, dtype, 5)).ok).toBe(false);
    } finally {
      await bad.close();
    }
  });

  it('an engine off by 3e-4 fails every float32 check, a few half ulps fail the half ones', async () => {
    const bad = await skewed(3e-4);
    try {
      for (const [i, c] of SELF_CHECKS.entries()) {
        const r = await runSelfCheck(bad.engine, c, 100 + i);
        expect(r.ok, `${r.name} should fail: ${r.detail}`).toBe(false);
      }
      expect((await compareEngines(bad.engine, wasm, SELF_CHECKS[0]!, 1)).ok).toBe(false);
    } finally {
      await bad.close();
    }
  });

  it("a call the engine cannot run is skipped with the engine's reason (engine.supports)", async () => {
    const no = await skewed(0, 'this engine runs nothing');
    try {
      const x = selfCheckInputs(SELF_CHECKS[0]!, 1);
      expect(no.engine.supports(x.q, x.k, x.v, x.options)).toBe('this engine runs nothing');
      expect(wasm.supports(x.q, x.k, x.v, x.options)).toBeNull();
      expect((await runSelfCheck(no.engine, SELF_CHECKS[0]!, 1)).skipped).toBe('this engine runs nothing');
      await expect(no.engine.attentionVarlen(x.q, x.k, x.v, x.options)).rejects.toThrow(
        new RangeError('this engine runs nothing'),
      );
    } finally {
      await no.close();
    }
  });

  it("engine.supports throws the call's own error for input that breaks the contract", () => {
    const x = selfCheckInputs(SELF_CHECKS[0]!, 1);
    expect(() => wasm.supports(x.q, x.k, x.v, { ...x.options, window: [-3, 0] })).toThrow(RangeError);
    expect(() => wasm.supports({ data: new Float64Array(4), shape: [1, 1, 4] } as never, x.k, x.v, x.options)).toThrow(
      TypeError,
    );
  });

  it('every bad call is rejected by the wasm engine with a TypeError or RangeError', async () => {
    for (const [name, call] of BAD_CALLS) {
      const e = await badCallError(wasm, call);
      expect(e instanceof TypeError || e instanceof RangeError, `${name}: ${e}`).toBe(true);
    }
  });
});
