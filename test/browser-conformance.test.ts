// The shared conformance cases in headless Chromium, run by dist/test/conformance.js inside the page
// against dist/browser.js: on one worker where the page is not cross-origin isolated (threads = 1,
// with the reason), and on 1 and 2 worker threads sharing one memory where it is. FLASHATTN_SEED=<n> replays.
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { caseId, cases } from './conformance/cases.js';
import { freshSeed } from './conformance/random.js';
import { type Browser, describeBrowser, openBrowser, openPage, startServer } from './browser-harness.js';

const seed = freshSeed();

type Servers = { isolated: Awaited<ReturnType<typeof startServer>>; plain: Awaited<ReturnType<typeof startServer>> };

/** In the page: load the built package and make an engine, kept on globalThis.__fa. */
async function setUp(page: Page, options: Record<string, unknown>) {
  return page.evaluate(async (o) => {
    const load = (globalThis as any).load as (url: string) => Promise<any>;
    const [entry, run] = await Promise.all([load('/dist/browser.js'), load('/dist/test/conformance.js')]);
    const cs = run;
    const engine = await entry.createEngine(o);
    Object.assign(globalThis, { __fa: { entry, run, cases: cs.cases, engine } });
    return {
      threads: engine.threads,
      backend: engine.backend,
      info: engine.info,
      fallbackReason: engine.fallbackReason,
      isolated: globalThis.crossOriginIsolated,
      ids: cs.cases.map((c: unknown) => cs.caseId(c)),
    };
  }, options);
}

/**
 * In the page: a long call, with the page's own 4 ms timer ticking meanwhile. Were the kernel on the
 * main thread, the timer would stall for the whole call; off it, only while the inputs are copied
 * (the one copy the main thread must make) and when the OS schedules a busy machine. Long sequences
 * of one narrow head: much compute (8.6 GFLOP) for little input (3 MiB).
 */
function timerDuringCall(page: Page) {
  return page.evaluate(async () => {
    const { entry, engine } = (globalThis as any).__fa;
    const L = 8192,
      H = 1,
      D = 32;
    const rand = (n: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898) * 0.5);
    const t = () => entry.tensor(rand(L * H * D), [1, L, H, D]);
    const q = t(),
      k = t(),
      v = t();
    let last = performance.now(),
      maxGap = 0,
      ticks = 0;
    const timer = setInterval(() => {
      const now = performance.now();
      maxGap = Math.max(maxGap, now - last);
      last = now;
      ticks++;
    }, 4);
    const t0 = performance.now();
    const call = engine.attention(q, k, v);
    const syncMs = performance.now() - t0;
    await call;
    const ms = performance.now() - t0;
    clearInterval(timer);
    return { ms, syncMs, maxGap, ticks };
  });
}

const modes = [
  {
    name: 'not cross-origin isolated: one worker',
    isolated: false,
    threads: 2,
    expect: 1,
    runsOn: 'one worker',
    reason: /needs a cross-origin isolated page/,
  },
  {
    name: 'cross-origin isolated: 2 threads',
    isolated: true,
    threads: 2,
    expect: 2,
    runsOn: 'workers',
    reason: /cross-origin isolated: 2 workers compute/,
  },
  {
    name: 'cross-origin isolated: 1 thread',
    isolated: true,
    threads: 1,
    expect: 1,
    runsOn: 'workers',
    reason: /cross-origin isolated: threads: 1 was asked; one worker computes/,
  },
] as const;

describeBrowser('conformance in Chromium', () => {
  let browser: Browser;
  let servers: Servers;
  beforeAll(async () => {
    browser = await openBrowser();
    servers = { isolated: await startServer(0, true), plain: await startServer(0, false) };
  });
  afterAll(async () => {
    await browser?.close();
    await servers?.isolated.close();
    await servers?.plain.close();
  });

  for (const mode of modes) {
    describe(mode.name, () => {
      let page: Page;
      let errors: string[];
      let engine: Awaited<ReturnType<typeof setUp>>;
      beforeAll(async () => {
        ({ page, errors } = await openPage(
          browser,
          (mode.isolated ? servers.isolated : servers.plain).url + 'web/blank.html',
        ));
        engine = await setUp(page, { threads: mode.threads });
      });
      afterAll(async () => {
        await page?.close();
      });

      it(`threads = ${mode.expect}, with the reason`, () => {
        expect(engine.isolated).toBe(mode.isolated);
        expect(engine.backend).toBe('wasm');
        expect(engine.threads).toBe(mode.expect);
        expect(engine.info['runsOn']).toBe(mode.runsOn);
        expect(String(engine.info['threadsReason'])).toMatch(mode.reason);
        expect(engine.info['simd']).toBe('relaxed'); // Chromium has relaxed SIMD
        expect(engine.ids, 'dist/ is older than test/conformance/cases.ts: run npm run build').toEqual(
          cases.map(caseId),
        );
      });

      cases.forEach((c, i) => {
        it(caseId(c), async (ctx) => {
          const r = await page.evaluate(
            ([index, s]) => {
              const fa = (globalThis as any).__fa;
              return fa.run.runCase(fa.engine, fa.cases[index], s);
            },
            [i, seed + i] as const,
          );
          if (r.skipped) {
            ctx.skip(r.skipped);
            return;
          }
          expect(r.ok, `${r.id}: ${r.detail} (tolerance ${r.tolerance}); replay with FLASHATTN_SEED=${seed}`).toBe(
            true,
          );
        });
      });

      it('concurrent calls of different sizes and dtypes each get their own answer', async () => {
        const errs = await page.evaluate(async () => {
          const { entry, engine } = (globalThis as any).__fa;
          const make = (L: number, H: number, D: number, dtype: string, seed: number) => {
            const f = Float32Array.from({ length: L * H * D }, (_, i) => Math.sin(i * 0.7 + seed));
            return entry.tensor(dtype === 'float32' ? f : entry.encode(f, dtype), [1, L, H, D], dtype);
          };
          const calls = [
            [300, 4, 64, 'float32'],
            [40, 2, 128, 'float16'],
            [700, 2, 32, 'float32'],
            [5, 1, 16, 'bfloat16'],
          ].map(([L, H, D, dt], i) => {
            const [q, k, v] = [1, 2, 3].map((s) =>
              make(L as number, H as number, D as number, dt as string, s + 10 * i),
            );
            return { q, k, v, dtype: dt as string, got: engine.attention(q, k, v, { causal: true }) };
          });
          const out = [];
          for (const c of calls) {
            const got = entry.decode((await c.got).out.data, c.dtype);
            const ref = entry.referenceAttention(c.q, c.k, c.v, { causal: true }).out64;
            let e = 0;
            for (let i = 0; i < ref.length; i++) e = Math.max(e, Math.abs(got[i] - ref[i]));
            out.push(e);
          }
          return out;
        });
        expect(errs[0]).toBeLessThan(1e-4);
        expect(errs[1]).toBeLessThan(1e-2);
        expect(errs[2]).toBeLessThan(1e-4);
        expect(errs[3]).toBeLessThan(5e-2);
      });

      it(
        mode.isolated
          ? "resident K and V give the host path's bits"
          : 'upload is refused with the reason (the engine is in one worker)',
        async () => {
          const r = await page.evaluate(async () => {
            const { entry, engine } = (globalThis as any).__fa;
            const t = (n: number, H: number, s: number) =>
              entry.tensor(
                Float32Array.from({ length: n * H * 64 }, (_, i) => Math.sin(i * 0.37 + s)),
                [1, n, H, 64],
              );
            const q = t(1, 8, 1),
              k = t(2100, 2, 2),
              v = t(2100, 2, 3);
            let kc: any, vc: any;
            try {
              [kc, vc] = [await engine.upload(k), await engine.upload(v)];
            } catch (e) {
              return { error: `${(e as Error).name}: ${(e as Error).message}` };
            }
            const host = (await engine.attention(q, k, v, { causal: true })).out.data as Float32Array;
            const res = (await engine.attention(q, kc, vc, { causal: true })).out.data as Float32Array;
            const back = (await engine.download(kc)).data as Float32Array;
            kc.dispose();
            vc.dispose();
            return {
              location: kc.location,
              same: host.every((x, i) => Object.is(x, res[i])),
              roundTrip: back.every((x, i) => x === k.data[i]),
            };
          });
          if (mode.isolated) expect(r).toEqual({ location: 'wasm', same: true, roundTrip: true });
          else expect(r.error).toMatch(/^TypeError: .*cross-origin isolated/);
        },
      );

      it('a long call leaves the page responsive (compute is off the main thread)', async () => {
        const { ms, syncMs, maxGap, ticks } = await timerDuringCall(page);
        const what =
          `a ${ms.toFixed(0)} ms call (${syncMs.toFixed(0)} ms of it on the main thread before it returned): ` +
          `the 4 ms timer ticked ${ticks} times, longest stall ${maxGap.toFixed(0)} ms`;
        console.log(`[flashattn] ${mode.name}: ${what}`);
        expect(ms, `too short to tell: ${what}`).toBeGreaterThan(80);
        expect(maxGap, what).toBeLessThan(ms / 3);
        expect(ticks, what).toBeGreaterThan(ms / 40);
        expect(errors).toEqual([]);
      });
    });
  }

  it("backend 'cuda' is one clear error; 'auto' is wasm and says why", async () => {
    const { page, errors } = await openPage(browser, servers.plain.url + 'web/blank.html');
    const r = await page.evaluate(async () => {
      const { createEngine } = await (globalThis as any).load('/dist/browser.js');
      let cudaError = '';
      try {
        await createEngine({ backend: 'cuda' });
      } catch (e) {
        cudaError = (e as Error).message;
      }
      const auto = await createEngine({ threads: 1 });
      const out = {
        cudaError,
        backend: auto.backend,
        fallbackReason: auto.fallbackReason,
        threadsReason: auto.info['threadsReason'],
      };
      await auto.dispose();
      return out;
    });
    expect(r.cudaError).toContain("the cuda engine needs Node and the native addon; in a browser use backend 'wasm'");
    expect(r.backend).toBe('wasm');
    expect(r.fallbackReason).toContain('cuda engine needs Node');
    expect(r.threadsReason).toContain('threads: 1 was asked');
    expect(errors).toEqual([]);
    await page.close();
  });
});
