// Functions that test/browser-kvcache.test.ts runs inside the page (page.evaluate serializes them, so they use
// only their argument and the page's globals: __fa = { entry, run, engine } with dist/browser.js and
// dist/test/conformance.js, __posted = the type of every message posted to a worker, __workers = the one-worker
// engines' workers). Each returns plain data for the test to check.

/** Bad calls on a loaded cache: each one's error and what it posted; the cache's contents after, against before. */
export async function badInput(isolated: boolean) {
  const g = globalThis as any;
  const { entry, run, engine } = g.__fa;
  const s = run.scenario({
    seed: 7,
    seqs: [
      { c: 5, n: 2, lq: 2 },
      { c: 3, n: 1, lq: 1 },
    ],
    blockSize: 4,
  });
  const cache = await run.loadKvCache(engine, s);
  const contents = async () => ({ k: await engine.download(cache.k), v: await engine.download(cache.v) });
  const before = await contents();
  const good = {
    cuSeqlensQ: s.cuSeqlensQ,
    cacheSeqlens: s.cacheSeqlens,
    blockTable: s.blockTable,
    kNew: s.kNew,
    vNew: s.vNew,
    cuSeqlensNew: s.cuSeqlensNew,
  };
  const m = s.maxBlocksPerSeq;
  const table = (i: number, id: number) => Int32Array.from(s.blockTable as Int32Array, (x, j) => (j === i ? id : x));
  const write = (o: any) => {
    const { cuSeqlensQ: _q, kNew, vNew, cache: c = cache, ...w } = o;
    return engine.writeKvCache(c, kNew, vNew, w);
  };
  const dims = { numBlocks: s.numBlocks, blockSize: s.blockSize, numKvHeads: s.numKvHeads, headDim: s.headDim };
  const other = await entry.createEngine({ threads: 1 });
  const foreign = await other.createKvCache(dims);
  const gone = await engine.createKvCache(dims);
  gone.dispose();
  const kd = s.kNew.data as Float32Array;
  const half = { data: new Uint16Array(kd.length), shape: s.kNew.shape, dtype: 'float16' };
  const heads = { data: kd, shape: [s.kNew.shape[0], 1, s.numKvHeads * s.headDim], dtype: 'float32' };
  const conflict = { ...good, blockTable: table(m, s.blockTable[1]), cacheSeqlens: Int32Array.of(5, 1) };
  const call =
    (o: object, c = cache) =>
    () =>
      engine.attentionWithKvCache(s.q, c, o);
  const bad: [string, () => Promise<unknown>][] = [
    ['a block id past the pool', call({ ...good, blockTable: table(1, s.numBlocks) })],
    ['a negative block id', call({ ...good, blockTable: table(0, -1) })],
    ['more rows than the table holds', call({ ...good, cacheSeqlens: Int32Array.of(m * 4, 3) })],
    ['two sequences writing one row', call(conflict)],
    ['kNew in another dtype', call({ ...good, kNew: half })],
    ['kNew with other heads', call({ ...good, kNew: heads })],
    ['a block id past the pool (write)', () => write({ ...good, blockTable: table(1, s.numBlocks) })],
    ['two sequences writing one row (write)', () => write(conflict)],
    ["another engine's cache", call(good, foreign)],
    ['a disposed cache', call(good, gone)],
    ['a disposed cache (write)', () => write({ ...good, cache: gone })],
    ['download of a disposed cache', () => engine.download(gone.k)],
  ];
  const describe = (e: any) => `${e?.name}: ${e?.message}`;
  const refused: [string, string, string[]][] = [];
  for (const [what, f] of bad) {
    const n = g.__posted.length;
    let error = 'resolved';
    try {
      await f();
    } catch (e) {
      error = describe(e);
    }
    refused.push([what, error, g.__posted.slice(n)]);
  }
  const now = await contents();
  const unchanged = { k: run.firstDiff(now.k, before.k), v: run.firstDiff(now.v, before.v) };
  let tooBig = 'resolved';
  try {
    await engine.createKvCache({ numBlocks: 65536, blockSize: 16, numKvHeads: 8, headDim: 128 });
  } catch (e) {
    tooBig = describe(e);
  }
  const r = await engine.attentionWithKvCache(s.q, cache, good);
  const afterwards = {
    ok: r.out.shape.join() === [s.q.shape[0], s.numHeads, s.headDimV].join(),
    k: run.firstDiff(await engine.download(cache.k), s.after.k),
  };
  let cacheTensorAsInput = '';
  let upload = '';
  if (!isolated) {
    const q = {
      data: new Float32Array(s.numBlocks * s.numHeads * s.headDim),
      shape: [s.numBlocks, 1, s.numHeads, s.headDim],
    };
    await engine.attention(q, cache.k, cache.v).catch((e: unknown) => (cacheTensorAsInput = describe(e)));
    await engine.upload(s.q).catch((e: unknown) => (upload = describe(e)));
  }
  cache.dispose();
  await other.dispose();
  return { refused, unchanged, tooBig, afterwards, cacheTensorAsInput, upload };
}

/**
 * Calls in flight when a second engine is disposed, and the engine's caches after; then, on the page's engine,
 * a call made before cache.dispose() (it completes) and one after (refused).
 */
export async function disposeInFlight(threads: number) {
  const g = globalThis as any;
  const { entry, run, engine } = g.__fa;
  const s = run.scenario({ seed: 11, seqs: [{ c: 300, n: 4, lq: 4 }], blockSize: 16 });
  const o = {
    cuSeqlensQ: s.cuSeqlensQ,
    cacheSeqlens: s.cacheSeqlens,
    blockTable: s.blockTable,
    kNew: s.kNew,
    vNew: s.vNew,
  };
  const w = { cacheSeqlens: s.cacheSeqlens, blockTable: s.blockTable, cuSeqlensNew: s.cuSeqlensNew };
  const describe = (e: any) => `${e?.name}: ${e?.message}`;
  const e = await entry.createEngine({ threads });
  const cache = await run.loadKvCache(e, s);
  const spare = await e.createKvCache({ numBlocks: 2, blockSize: 2, numKvHeads: 1, headDim: 1 });
  const calls = [
    e.attentionWithKvCache(s.q, cache, o),
    e.writeKvCache(cache, s.kNew, s.vNew, w),
    e.attentionWithKvCache(s.q, cache, o),
    e.download(cache.k),
  ];
  await e.dispose();
  const settled = (await Promise.allSettled(calls)).map((r) =>
    r.status === 'fulfilled' ? 'fulfilled' : `rejected: ${r.reason?.message}`,
  );
  const disposed = [cache.disposed, spare.disposed];
  let after = 'resolved';
  await e.attentionWithKvCache(s.q, cache, o).catch((x: unknown) => (after = describe(x)));
  const mine = await run.loadKvCache(engine, s);
  const before = engine.attentionWithKvCache(s.q, mine, o);
  const n = g.__posted.length;
  mine.dispose();
  const posted = g.__posted.slice(n);
  const beforeFree = await before.then(
    () => 'fulfilled',
    (x: unknown) => describe(x),
  );
  let freed = 'resolved';
  await engine.attentionWithKvCache(s.q, mine, o).catch((x: unknown) => (freed = describe(x)));
  return { settled, disposed, after, beforeFree, posted, freed };
}

/** An uncaught error in the one-worker engine's worker while a long call is in flight; a later call. */
export async function workerErrorFailsCall() {
  const g = globalThis as any;
  const { entry } = g.__fa;
  const e = await entry.createEngine({ threads: 1 });
  const worker = g.__workers[g.__workers.length - 1] as Worker;
  const L = 2048,
    H = 4,
    D = 64,
    bs = 16;
  const cache = await e.createKvCache({ numBlocks: L / bs, blockSize: bs, numKvHeads: H, headDim: D });
  const rows = (n: number) =>
    entry.tensor(
      Float32Array.from({ length: n * H * D }, (_, i) => Math.sin(i * 0.37)),
      [n, H, D],
    );
  const options = {
    cuSeqlensQ: Int32Array.of(0, L),
    cacheSeqlens: Int32Array.of(0),
    blockTable: Int32Array.from({ length: L / bs }, (_, i) => i),
    kNew: rows(L),
    vNew: rows(L),
  };
  const describe = (x: any) => `${x?.name}: ${x?.message}`;
  worker.postMessage(null); // the worker's message handler throws on it: an uncaught error there
  let call = 'resolved';
  await e.attentionWithKvCache(rows(L), cache, options).catch((x: unknown) => (call = describe(x)));
  let later = 'resolved';
  await e
    .attentionWithKvCache(rows(1), cache, {
      ...options,
      cuSeqlensQ: Int32Array.of(0, 1),
      kNew: undefined,
      vNew: undefined,
    })
    .catch((x: unknown) => (later = describe(x)));
  await e.dispose();
  return { call, later };
}
