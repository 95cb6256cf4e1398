// options.out / options.lse on host calls in headless Chromium, on dist/browser.js: the one-worker engine of a
// page that is not cross-origin isolated (the worker writes the results into the staging buffer, the page
// copies them into the caller's arrays) and 1 and 2 worker threads of an isolated page (core.ts writes them
// straight in). attention, attentionVarlen and attentionWithKvCache into poisoned arrays give the very objects
// back, bit for bit the results into fresh arrays; out may be q's own array; a decode loop of calls into one
// pair of arrays, and calls in flight together; a bad out is refused on the page with nothing posted.
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { browserWithServers, describeBrowser, openPage } from './browser-harness.js';

/** In the page: count what is posted to any worker, load the built package and the suite, make an engine. */
async function setUp(page: Page, options: Record<string, unknown>) {
  return page.evaluate(async (o) => {
    const g = globalThis as any;
    g.__posted = [] as string[];
    g.__staged = [] as boolean[];
    const post = Worker.prototype.postMessage;
    Worker.prototype.postMessage = function (this: Worker, m: any, t?: any) {
      g.__posted.push(String(m?.type));
      // the one-worker engine's calls: whether out and lse go in the staging buffer (not the caller's arrays)
      const into = m?.problem?.outInto ?? m?.problem?.lseInto;
      if (into) g.__staged.push(into.data.buffer === (m.staging ?? m.problem.q.data.buffer));
      return post.call(this, m, t);
    } as typeof post;
    const load = g.load as (url: string) => Promise<any>;
    const [entry, run] = await Promise.all([load('/dist/browser.js'), load('/dist/test/conformance.js')]);
    const engine = await entry.createEngine(o);
    g.__fa = { entry, run, engine };
    return { threads: engine.threads, runsOn: engine.info['runsOn'] };
  }, options);
}

/** In the page: every check's result as plain data (`same` entries are first differing bytes, -1 when none). */
async function hostOut() {
  const g = globalThis as any;
  const { entry, run, engine } = g.__fa;
  const size = (s: number[]) => s.reduce((a, b) => a * b, 1);
  const data = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898 + seed));
  const t = (shape: number[], seed: number, dtype = 'float32') => ({
    data: dtype === 'float32' ? data(size(shape), seed) : entry.encode(data(size(shape), seed), dtype),
    shape,
    dtype,
  });
  const poisoned = (shape: number[], dtype = 'float32') => ({
    data: dtype === 'float32' ? new Float32Array(size(shape)).fill(NaN) : new Uint16Array(size(shape)).fill(0x7e00),
    shape,
    dtype,
  });
  const same = (a: any, b: any) => run.firstDiff(a, b);
  const r: Record<string, unknown> = {};

  const q = t([2, 5, 4, 16], 1),
    k = t([2, 7, 2, 16], 2),
    v = t([2, 7, 2, 8], 3);
  const fresh = await engine.attention(q, k, v, { causal: true, returnLse: true });
  const out = poisoned([2, 5, 4, 8]),
    lse = poisoned([2, 4, 5]);
  const a = await engine.attention(q, k, v, { causal: true, out, lse });
  r.attention = [a.out === out, a.lse === lse, same(out, fresh.out), same(lse, fresh.lse)];

  const hq = t([7, 4, 16], 4, 'float16'),
    hk = t([10, 1, 16], 5, 'float16');
  const vo = { cuSeqlensQ: Int32Array.of(0, 3, 7), cuSeqlensK: Int32Array.of(0, 4, 10) };
  const hf = await engine.attentionVarlen(hq, hk, hk, { ...vo, returnLse: true });
  const hOut = poisoned([7, 4, 16], 'float16');
  const h = await engine.attentionVarlen(hq, hk, hk, { ...vo, out: hOut });
  const hLse = poisoned([4, 7]);
  const hl = await engine.attentionVarlen(hq, hk, hk, { ...vo, lse: hLse });
  r.varlen = [h.out === hOut, h.lse === undefined, same(hOut, hf.out), hl.lse === hLse, same(hLse, hf.lse)];

  const self = { ...q, data: q.data.slice() };
  const sk = { ...self, data: self.data.slice() };
  const sf = await engine.attention(self, sk, sk, {});
  const so = await engine.attention(self, sk, sk, { out: self });
  r.outInQ = [so.out === self, same(self, sf.out)];

  const s = run.scenario({
    seed: 5,
    seqs: [
      { c: 5, n: 2, lq: 2 },
      { c: 9, n: 1, lq: 1 },
    ],
    blockSize: 4,
  });
  const ko = { cuSeqlensQ: s.cuSeqlensQ, cacheSeqlens: s.cacheSeqlens, blockTable: s.blockTable, causal: true };
  const [ca, cb] = [await run.loadKvCache(engine, s), await run.loadKvCache(engine, s)];
  const kf = await engine.attentionWithKvCache(s.q, ca, { ...ko, kNew: s.kNew, vNew: s.vNew, returnLse: true });
  const kOut = poisoned([3, s.numHeads, s.headDimV]),
    kLse = poisoned([s.numHeads, 3]);
  const kr = await engine.attentionWithKvCache(s.q, cb, { ...ko, kNew: s.kNew, vNew: s.vNew, out: kOut, lse: kLse });
  const cacheSame = same(await engine.download(cb.k), await engine.download(ca.k));
  r.kvcache = [kr.out === kOut, kr.lse === kLse, same(kOut, kf.out), same(kLse, kf.lse), cacheSame];

  // a decode loop into one pair of arrays, from engine.hostTensor (the staging buffer is reused meanwhile)
  const dOut = engine.hostTensor([3, s.numHeads, s.headDimV], 'float32'),
    dLse = engine.hostTensor([s.numHeads, 3], 'float32');
  const loop: number[] = [];
  for (let step = 0; step < 4; step++) {
    const dq = t([3, s.numHeads, s.headDim], 10 + step);
    const want = await engine.attentionWithKvCache(dq, ca, { ...ko, returnLse: true });
    dOut.data.fill(NaN);
    await engine.attentionWithKvCache(dq, cb, { ...ko, out: dOut, lse: dLse });
    loop.push(same(dOut, want.out), same(dLse, want.lse));
  }
  r.loop = loop;
  ca.dispose();
  cb.dispose();

  const inputs = [0, 1, 2].map((i) => t([1, 3, 2, 8], 20 + i));
  const outs = inputs.map(() => poisoned([1, 3, 2, 8]));
  await Promise.all(inputs.map((x, i) => engine.attention(x, x, x, { out: outs[i] })));
  const wants: any[] = [];
  for (const x of inputs) wants.push(await engine.attention(x, x, x));
  r.inFlight = outs.map((o, i) => same(o, wants[i].out));

  const n = g.__posted.length;
  const bad = await engine
    .attention(q, k, v, { out: { data: new Float32Array(3), shape: [2, 5, 4, 8], dtype: 'float32' } })
    .then(
      () => 'resolved',
      (e: any) => `${e?.name}: ${e?.message}`,
    );
  r.refused = [bad, g.__posted.slice(n)];
  r.staged = g.__staged;
  return r;
}

const modes = [
  { name: 'not cross-origin isolated: one worker', isolated: false, threads: 1, runsOn: 'one worker' },
  { name: 'cross-origin isolated: 1 thread', isolated: true, threads: 1, runsOn: 'workers' },
  { name: 'cross-origin isolated: 2 threads', isolated: true, threads: 2, runsOn: 'workers' },
] as const;

describeBrowser('host options.out and options.lse in Chromium', () => {
  const { browser, blankUrl } = browserWithServers();

  for (const mode of modes) {
    describe(mode.name, () => {
      let page: Page;
      let errors: string[];
      beforeAll(async () => {
        ({ page, errors } = await openPage(browser(), blankUrl(mode.isolated)));
        const e = await setUp(page, { threads: mode.threads });
        expect([e.threads, e.runsOn]).toEqual([mode.threads, mode.runsOn]);
      });
      afterAll(async () => {
        await page?.evaluate(() => (globalThis as any).__fa?.engine.dispose());
        await page?.close();
      });

      it('results into the caller’s arrays: the same objects, bit for bit the fresh results', async () => {
        const r = await page.evaluate(hostOut);
        expect(r.attention, 'attention: out, lse returned; bytes of out, lse').toEqual([true, true, -1, -1]);
        expect(r.varlen, 'attentionVarlen (float16): out alone, then lse alone').toEqual([true, true, -1, true, -1]);
        expect(r.outInQ, 'out in q.data').toEqual([true, -1]);
        expect(r.kvcache, 'attentionWithKvCache: out, lse, and the cache written alike').toEqual([
          true,
          true,
          -1,
          -1,
          -1,
        ]);
        expect(r.loop, 'a decode loop into hostTensor arrays').toEqual(new Array(8).fill(-1));
        expect(r.inFlight, 'calls in flight together').toEqual([-1, -1, -1]);
        const [error, posted] = r.refused as [string, string[]];
        expect(error).toMatch(/^RangeError: Expected 320 elements .* for options.out.data but received 3 elements$/);
        expect(posted, 'a refused call posts nothing').toEqual([]);
        const staged = r.staged as boolean[];
        if (mode.isolated) expect(staged, 'nothing posted with out or lse').toEqual([]);
        else expect(staged.length > 10 && staged.every(Boolean), 'out and lse in the staging buffer').toBe(true);
        expect(errors).toEqual([]);
      });
    });
  }
});
