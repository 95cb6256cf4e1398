#!/usr/bin/env node
// Correctness of the CUDA engine from the built package, without a test framework (it needs only
// Node and dist/; the vitest suites run there too, through bench/gpu/vitest.sh): the shared
// conformance cases through the default plan and every kernel path of paths.mjs (set with
// setKnobs) on host and device tensors, larger cases, device tensor round trips, the finalizer,
// and CUDA errors as JS errors. Prints pass/fail counts.
//
//   node --expose-gc bench/gpu/check.mjs [--quick | --tiny] [--seed N]
// --quick runs a reduced set (for compute-sanitizer memcheck); --tiny a smaller one (racecheck).
import { caseId, cases, freshSeed, kvCases, largeCases, runCase, runKvCase } from '../../dist/test/conformance.js';
import { cudaAddon, loadCudaBackend } from '../../dist/cuda/backend.js';
import { decode, encode } from '../../dist/half.js';
import { readKnobs, setKnobs } from '../../dist/knobs.js';
import { createEngine } from '../../dist/node.js';
import { cudaKernelPaths } from './paths.mjs';

const argv = process.argv.slice(2);
if (argv.includes('--help')) {
  console.log('node --expose-gc bench/gpu/check.mjs [--quick | --tiny] [--seed N]');
  console.log(`kernel paths: default, ${cudaKernelPaths.map(([name]) => name).join(', ')}`);
  process.exit(0);
}
const tiny = argv.includes('--tiny');
const quick = tiny || argv.includes('--quick');
const seedArg = argv.indexOf('--seed');
const seed = seedArg >= 0 ? Number(argv[seedArg + 1]) >>> 0 : freshSeed();

const paths = [['default', {}], ...cudaKernelPaths];
// The knobs the paths set start from their defaults, whatever the environment set: 'default' is
// the default plan, and so are the larger cases and the rest after the paths.
const defaults = readKnobs({}).knobs;
setKnobs(
  Object.fromEntries(cudaKernelPaths.flatMap(([, changes]) => Object.keys(changes)).map((k) => [k, defaults[k]])),
);

let passed = 0,
  failed = 0;
const fail = (what) => {
  failed++;
  console.log(`FAIL ${what}`);
};
const check = (ok, what) => (ok ? passed++ : fail(what));

let engine;
try {
  engine = await createEngine({ backend: 'cuda' });
} catch (e) {
  console.log(`cuda engine not available: ${e.message}`);
  process.exit(1);
}
console.log(`device: ${JSON.stringify(engine.info)}; seed ${seed}${quick ? ' (quick)' : ''}`);

const shared = tiny ? [cases[0], cases[4], cases[7], cases[31]] : quick ? cases.filter((_, i) => i % 4 === 0) : cases;
for (const [name, changes] of tiny ? paths.slice(0, 2) : quick ? paths.slice(0, 3) : paths) {
  const restore = setKnobs(changes);
  let p = 0,
    f = 0;
  for (const device of [false, true]) {
    for (let i = 0; i < shared.length; i++) {
      const c = shared[i];
      try {
        const r = await runCase(engine, c, seed + i, { device });
        if (r.skipped) console.log(`skip [${name}] ${r.id}: ${r.skipped}`);
        else if (r.ok) p++;
        else {
          f++;
          fail(`[${name}${device ? ', device' : ''}] ${r.id}: ${r.detail} (tolerance ${r.tolerance})`);
        }
      } catch (e) {
        f++;
        fail(`[${name}${device ? ', device' : ''}] ${caseId(c)} threw ${e.stack}`);
      }
    }
  }
  restore();
  passed += p;
  console.log(`shared cases, ${name}: ${p} passed, ${f} failed`);
}

for (const c of tiny ? [] : quick ? largeCases.slice(0, 2) : largeCases) {
  for (const device of [false, true]) {
    const t0 = Date.now();
    try {
      const r = await runCase(engine, c, seed + 7, { device });
      check(r.ok, `[large${device ? ', device' : ''}] ${r.id}: ${r.detail}`);
      console.log(
        `large ${r.ok ? 'ok  ' : 'FAIL'} ${r.id}${device ? ' (device)' : ''}: ${r.detail} [${Date.now() - t0} ms]`,
      );
    } catch (e) {
      fail(`[large] ${caseId(c)} threw ${e.stack}`);
    }
  }
}

// The KV cache cases (paged reads in both kernels, the write, the gather of float32 caches).
{
  const kv = tiny ? kvCases.filter((_, i) => i % 6 === 0) : quick ? kvCases.filter((_, i) => i % 2 === 0) : kvCases;
  let p = 0;
  for (let i = 0; i < kv.length; i++) {
    const [name, c] = kv[i];
    try {
      const r = await runKvCase(engine, c, seed + 100 + i);
      if (r.failures.length === 0) p++;
      else fail(`[kv] ${name}: ${r.failures.join('; ')}`);
    } catch (e) {
      fail(`[kv] ${name} threw ${e.stack}`);
    }
  }
  passed += p;
  console.log(`KV cache cases: ${p} passed, ${kv.length - p} failed`);
}

// Device tensors: round trip, dispose, finalizer, errors.
const addon = cudaAddon();
for (const dtype of ['float32', 'float16', 'bfloat16']) {
  const values = Float32Array.from({ length: 105 }, (_, i) => Math.sin(i) * 100);
  const data = encode(values, dtype);
  const d = await engine.upload({ data, shape: [3, 5, 7], dtype });
  const back = await engine.download(d);
  check(
    back.dtype === dtype && decode(back.data, dtype).every((x, i) => Object.is(x, decode(data, dtype)[i])),
    `round trip ${dtype}`,
  );
  const live = addon.liveBytes();
  d.dispose();
  check(addon.liveBytes() === live - data.byteLength, `dispose frees ${dtype}`);
  check(
    await engine.download(d).then(
      () => false,
      (e) => /disposed/.test(e.message),
    ),
    'download of a disposed tensor rejects',
  );
}
if (typeof globalThis.gc === 'function') {
  const before = addon.liveBytes();
  for (let i = 0; i < 8; i++)
    await engine.upload({ data: new Float32Array(4 << 20), shape: [4 << 20], dtype: 'float32' });
  for (let i = 0; i < 10 && addon.liveBytes() > before; i++) {
    globalThis.gc();
    await new Promise((r) => setTimeout(r, 20));
  }
  check(addon.liveBytes() === before, `finalizer frees forgotten tensors (live ${addon.liveBytes()} vs ${before})`);
}
const ctx = new addon.Context();
const err = await addon.allocDevice(ctx, 2 ** 52).then(
  () => null,
  (e) => e,
);
check(
  err instanceof Error && /cudaErrorMemoryAllocation|out of memory/.test(err.message),
  `CUDA error becomes a JS error: ${err?.message}`,
);
console.log(`CUDA error message: ${err?.message}`);
await ctx.dispose();
const after = await runCase(engine, cases[0], seed);
check(after.ok, 'engine works after a CUDA error');

// Timing hook.
const backend = await loadCudaBackend();
const { validateVarlen } = await import('../../dist/validate.js');
const t = await backend.upload({
  data: encode(
    Float32Array.from({ length: 1024 * 8 * 128 }, (_, i) => Math.cos(i)),
    'bfloat16',
  ),
  shape: [1024, 8, 128],
  dtype: 'bfloat16',
});
const info = await backend.time(
  validateVarlen(t, t, t, { cuSeqlensQ: Int32Array.of(0, 1024), cuSeqlensK: Int32Array.of(0, 1024), causal: true }),
  5,
);
check(info.kernelMs > 0, 'timing hook');
t.dispose();

await backend.dispose();
await engine.dispose();
console.log(`\ncheck: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
