// The KV cache in headless Chromium, on dist/browser.js: the conformance cases (test/conformance/kvcache-cases.ts,
// run in the page by dist/test/conformance.js's runKvCase: outputs against the float64 reference, the cache's
// contents after each call bit for bit) on the one-worker engine of a page that is not cross-origin isolated
// (the cache in the worker's memory, the page holding a handle) and on 2 threads of an isolated page; the two
// give the same bits, and the one-worker engine on the baseline SIMD build gives the Node wasm engine's bits.
// Bad input is refused on the page with nothing posted to any worker, leaving the cache bit for bit as it was;
// the engine's dispose rejects calls in flight and marks its caches disposed; a worker error fails its call.
// FLASHATTN_SEED=<n> replays.
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engineFromBackend } from '../src/engine.js';
import type { Engine } from '../src/types.js';
import { createWasmBackend } from '../src/wasm/backend.js';
import { kvCases } from './conformance/kvcache-cases.js';
import { digest, runKvCase } from './conformance/kvcache.js';
import { freshSeed } from './conformance/random.js';
import { browserWithServers, describeBrowser, openPage } from './browser-harness.js';
import { badInput, disposeInFlight, workerErrorFailsCall } from './browser-kvcache-page.js';

const seed = freshSeed();
type Digests = string[];

/**
 * In the page: count what is posted to any worker (by type), keep the engine's host worker, load the built
 * package and the suite, and make an engine with `options`, kept on globalThis.__fa.
 */
async function setUp(page: Page, options: Record<string, unknown>) {
  return page.evaluate(async (o) => {
    const g = globalThis as any;
    g.__posted = [] as string[];
    g.__workers = [] as Worker[];
    const post = Worker.prototype.postMessage;
    Worker.prototype.postMessage = function (this: Worker, m: any, t?: any) {
      g.__posted.push(String(m?.type));
      if (m?.type === 'host') g.__workers.push(this);
      return post.call(this, m, t);
    } as typeof post;
    const load = g.load as (url: string) => Promise<any>;
    const [entry, run] = await Promise.all([load('/dist/browser.js'), load('/dist/test/conformance.js')]);
    if (o.wasm) o = { ...o, wasm: { baseline: new URL(o.wasm as string, location.href) } };
    const engine = await entry.createEngine(o);
    g.__fa = { entry, run, engine };
    return {
      threads: engine.threads,
      runsOn: engine.info['runsOn'],
      simd: engine.info['simd'],
      cases: run.kvCases.length,
    };
  }, options);
}

/** In the page: KV case `index` on the page's engine; its failures and the digests of out, lse, k and v. */
function pageCase(page: Page, index: number, caseSeed: number): Promise<{ failures: string[]; digests: Digests }> {
  return page.evaluate(
    async ([i, s]) => {
      const { run, engine } = (globalThis as any).__fa;
      const r = await run.runKvCase(engine, run.kvCases[i][1], s);
      return { failures: r.failures, digests: [r.out, r.lse, r.k, r.v].map(run.digest) };
    },
    [index, caseSeed] as const,
  );
}

const modes = [
  { name: 'not cross-origin isolated: one worker', isolated: false, threads: 2, expect: 1, runsOn: 'one worker' },
  { name: 'cross-origin isolated: 2 threads', isolated: true, threads: 2, expect: 2, runsOn: 'workers' },
] as const;

describeBrowser(`KV cache in Chromium (seed ${seed}; replay with FLASHATTN_SEED=${seed})`, () => {
  const { browser, blankUrl } = browserWithServers();
  /** Each mode's digests per case: the two must agree bit for bit. */
  const digests = new Map<string, Digests[]>();

  for (const mode of modes) {
    describe(mode.name, () => {
      let page: Page;
      let errors: string[];
      beforeAll(async () => {
        ({ page, errors } = await openPage(browser(), blankUrl(mode.isolated)));
        const e = await setUp(page, { threads: mode.threads });
        expect(e.threads).toBe(mode.expect);
        expect(e.runsOn).toBe(mode.runsOn);
        expect(e.cases, 'dist/ is older than test/conformance/kvcache-cases.ts: run npm run build').toBe(
          kvCases.length,
        );
        digests.set(mode.name, []);
      });
      afterAll(async () => {
        await page?.evaluate(() => (globalThis as any).__fa?.engine.dispose());
        await page?.close();
      });

      kvCases.forEach(([name], i) => {
        it(name, async () => {
          const r = await pageCase(page, i, seed + i);
          expect(r.failures, `replay with FLASHATTN_SEED=${seed}`).toEqual([]);
          digests.get(mode.name)![i] = r.digests;
        });
      });

      it('bad input is refused on the page, nothing posted to a worker, the cache bit for bit as it was', async () => {
        const r = await page.evaluate(badInput, mode.isolated);
        for (const [what, error, posted] of r.refused) {
          expect(posted, `${what}: posted to a worker`).toEqual([]);
          expect(error, what).toMatch(/^(TypeError|RangeError): Expected /);
        }
        expect(r.refused.map(([what, error]) => [what, error.split(':')[0]])).toEqual([
          ['a block id past the pool', 'RangeError'],
          ['a negative block id', 'RangeError'],
          ['more rows than the table holds', 'RangeError'],
          ['two sequences writing one row', 'RangeError'],
          ['kNew in another dtype', 'TypeError'],
          ['kNew with other heads', 'RangeError'],
          ['a block id past the pool (write)', 'RangeError'],
          ['two sequences writing one row (write)', 'RangeError'],
          ["another engine's cache", 'TypeError'],
          ['a disposed cache', 'TypeError'],
          ['a disposed cache (write)', 'TypeError'],
          ['download of a disposed cache', 'TypeError'],
        ]);
        expect(r.unchanged).toEqual({ k: -1, v: -1 });
        // Refused in the worker, by the engine's own limit: the error keeps its class.
        expect(r.tooBig).toMatch(/^RangeError: Expected a KV cache that fits the wasm engine's 4 GiB memory/);
        expect(r.afterwards, 'a good call after the refusals, and the rows it wrote').toEqual({ ok: true, k: -1 });
        if (!mode.isolated) {
          expect(r.cacheTensorAsInput).toMatch(/^TypeError: Expected a host tensor for k but received a KV cache's k/);
          expect(r.upload).toMatch(/^TypeError: .*cross-origin isolated.*a KV cache/);
        }
        expect(errors).toEqual([]);
      });

      it("the engine's dispose rejects calls in flight and marks its caches disposed", async () => {
        const r = await page.evaluate(disposeInFlight, mode.threads);
        if (!mode.isolated) expect(r.settled.every((s) => /^rejected: .*disposed while this call/.test(s))).toBe(true);
        else expect(r.settled).toHaveLength(4);
        expect(r.disposed).toEqual([true, true]);
        expect(r.after).toMatch(/^TypeError: Expected an engine that is not disposed/);
        // On the page's engine: a call made before cache.dispose() completes; one made after is refused.
        expect(r.beforeFree).toBe('fulfilled');
        expect(r.posted).toEqual(mode.isolated ? [] : ['kvFree']);
        expect(r.freed, 'cache.dispose() then a call').toMatch(/^TypeError: .*not disposed/);
      });

      if (!mode.isolated)
        it('a forgotten cache is freed in the worker once it and its tensors are collected (finalizer)', async () => {
          const frees = () =>
            page.evaluate(() => (globalThis as any).__posted.filter((t: string) => t === 'kvFree').length);
          const start = await frees();
          await page.evaluate(async () => {
            const g = globalThis as any;
            const spec = { numBlocks: 4, blockSize: 4, numKvHeads: 1, headDim: 4 };
            for (let i = 0; i < 3; i++) await g.__fa.engine.createKvCache(spec);
            g.__keptK = (await g.__fa.engine.createKvCache(spec)).k; // its cache is forgotten, but not its k
          });
          const cdp = await page.context().newCDPSession(page);
          for (let i = 0; i < 40 && (await frees()) < start + 3; i++) {
            await cdp.send('HeapProfiler.collectGarbage');
            await new Promise((r) => setTimeout(r, 25));
          }
          await cdp.detach();
          expect((await frees()) - start).toBe(3);
          const kept = await page.evaluate(async () => {
            const g = globalThis as any;
            return (await g.__fa.engine.download(g.__keptK)).data.length;
          });
          expect(kept).toBe(64);
        });

      if (!mode.isolated)
        it('a worker error fails its call in flight and every later one', async () => {
          const r = await page.evaluate(workerErrorFailsCall);
          expect(r.call).toMatch(/^Error: flashattn: the wasm engine's worker failed \(wasm worker failed: /);
          expect(r.later).toBe(r.call);
        });
    });
  }

  it('one worker and 2 isolated threads give the same bits (out, lse, the cache after)', () => {
    const [a, b] = modes.map((m) => digests.get(m.name) ?? []);
    kvCases.forEach(([name], i) => {
      if (a[i] && b[i]) expect(a[i], name).toEqual(b[i]);
    });
    expect(a.filter(Boolean).length).toBe(kvCases.length);
  });

  describe('the one-worker engine on the baseline SIMD build against the Node wasm engine', () => {
    let page: Page;
    let node: Engine;
    beforeAll(async () => {
      ({ page } = await openPage(browser(), blankUrl(false)));
      const e = await setUp(page, { threads: 1, wasm: '/build/wasm/flashattn.wasm' });
      expect([e.runsOn, e.simd]).toEqual(['one worker', 'baseline']);
      node = engineFromBackend(await createWasmBackend({ threads: 1, simd: 'baseline' }));
    });
    afterAll(async () => {
      await node?.dispose();
      await page?.close();
    });

    kvCases.forEach(([name, c], i) => {
      it(`the same bits: ${name}`, async () => {
        const r = await pageCase(page, i, seed + i);
        expect(r.failures).toEqual([]);
        const n = await runKvCase(node, c, seed + i);
        expect(n.failures).toEqual([]);
        expect(r.digests, 'out, lse, cache.k, cache.v').toEqual([n.out, n.lse, n.k, n.v].map(digest));
      });
    });
  });
});
