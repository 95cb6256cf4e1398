/**
 * `flashattn doctor`: which engines load here and why (not), then the conformance cases on each.
 * It needs only the built package (no test framework): this is how the GPU machine is checked.
 */
import { type Case, caseId, cases } from '../conformance/cases.js';
import { freshSeed } from '../conformance/random.js';
import { buildInputs, runCase } from '../conformance/run.js';
import { engineUnsupported as unsupported } from '../engine.js';
import { validateFixed, validateVarlen } from '../validate.js';
import { badCalls, compareEngines, compareErrors } from '../conformance/cross.js';
import { createEngine } from '../node.js';
import type { BackendName, Engine } from '../types.js';
import { type CommandSpec, type Values, flag } from './args.js';

/** Whether an engine skips a case (the predicate runCase uses). */
function engineUnsupported(engine: Engine, c: Case, seed: number): boolean {
  const x = buildInputs(c, seed);
  const p = x.fixed ? validateFixed(x.q, x.k, x.v, x.options) : validateVarlen(x.q, x.k, x.v, x.options);
  return unsupported(engine, p) !== null;
}

const flags = {
  backend: flag.choice(['wasm', 'cuda'] as const, 'only this engine (default: both)'),
  threads: flag.int('N', 'worker threads of the wasm engine (default: the cores)', 1),
  filter: flag.text('TEXT', "only the cases whose id contains TEXT (e.g. 'Lq=10 Lk=20')"),
  seed: flag.int('N', 'the inputs\' seed (default: a fresh one, printed to replay)', 0, 0xffffffff),
};

export const doctorCommand: CommandSpec<typeof flags> = {
  name: 'doctor',
  summary: 'which engines load and why (not), then the conformance cases on each and the engines against each other',
  flags,
};

export async function doctor(o: Values<typeof flags>, log: (s: string) => void, debug = false): Promise<number> {
  const only: BackendName | undefined = o.backend;
  const threads = o.threads;
  const filter = o.filter;
  const seed = o.seed ?? freshSeed();
  const names: BackendName[] = only ? [only] : ['wasm', 'cuda'];

  log(`flashattn doctor — Node ${process.version}, ${process.platform}-${process.arch}`);
  const engines: { name: string; engine: Engine; device: boolean }[] = [];
  for (const name of names) {
    try {
      const engine = await createEngine({ backend: name, threads });
      const info = Object.entries(engine.info).map(([k, v]) => `${k}=${v}`).join(', ');
      log(`  ${name}: loaded (${info})`);
      engines.push({ name, engine, device: false });
      if (name === 'cuda') engines.push({ name: 'cuda (device tensors)', engine, device: true });
    } catch (e) {
      log(`  ${name}: not available — ${(e as Error).message}`);
    }
  }
  const auto = await createEngine({ threads: 1 }).catch(() => null);
  if (auto) {
    log(`  auto picks: ${auto.backend}${auto.fallbackReason ? ` (${auto.fallbackReason})` : ''}`);
    await auto.dispose();
  }

  let passed = 0, failed = 0, skipped = 0;
  log(`\nconformance cases (seed ${seed}; replay with --seed ${seed})`);
  for (const { name, engine, device } of engines) {
    let p = 0, f = 0, s = 0;
    for (let i = 0; i < cases.length; i++) {
      const c = cases[i]!;
      if (filter && !caseId(c).includes(filter)) continue;
      try {
        const r = await runCase(engine, c, seed + i, { device });
        if (r.skipped) { s++; log(`  [${name}] skip ${r.id}: ${r.skipped}`); }
        else if (r.ok) p++;
        else { f++; log(`  [${name}] FAIL ${r.id}: ${r.detail} (tolerance ${r.tolerance})`); }
      } catch (e) {
        f++;
        log(`  [${name}] FAIL ${caseId(c)}: threw ${debug ? (e as Error).stack ?? e : (e as Error).message ?? e}`);
      }
    }
    log(`  ${name}: ${p} passed, ${f} failed, ${s} skipped`);
    passed += p; failed += f; skipped += s;
  }
  // With two engines: the same inputs must give the same function, the same bad input the same error.
  const hosts = engines.filter((e) => !e.device);
  for (let i = 1; i < hosts.length; i++) {
    const a = hosts[i]!, b = hosts[0]!;
    const label = `${a.name} vs ${b.name}`;
    let p = 0, f = 0;
    for (let j = 0; j < cases.length; j++) {
      const c = cases[j]!;
      if (filter && !caseId(c).includes(filter)) continue;
      if (engineUnsupported(a.engine, c, seed + j) || engineUnsupported(b.engine, c, seed + j)) continue;
      const r = await compareEngines(a.engine, b.engine, c, seed + j).catch((e: Error) => ({ id: caseId(c), ok: false, detail: `threw ${e.message}` }));
      if (r.ok) p++; else { f++; log(`  [${label}] FAIL ${r.id}: ${r.detail}`); }
    }
    for (const [name, call] of badCalls) {
      const r = await compareErrors(a.engine, b.engine, call);
      if (r.ok) p++; else { f++; log(`  [${label}] FAIL bad input '${name}': ${r.detail}`); }
    }
    log(`  ${label} (same outputs, same errors word for word): ${p} passed, ${f} failed`);
    passed += p; failed += f;
  }
  for (const e of new Set(engines.map((x) => x.engine))) await e.dispose();
  if (engines.length === 0) { log('no engine could be loaded'); return 1; }
  log(`\ndoctor: ${passed} passed, ${failed} failed, ${skipped} skipped`);
  return failed === 0 ? 0 : 1;
}
