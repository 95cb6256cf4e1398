/**
 * `flashattn doctor`: which engines load here and why (not), which CUDA addon and from where, then
 * the self-checks (src/cli/selfcheck.ts) on each engine, and the engines against each other. It
 * needs only the installed package and its public API.
 */
import { createEngine } from '../node.js';
import type { BackendName, Engine } from '../types.js';
import { type CommandSpec, type Values, flag } from './args.js';
import { BAD_CALLS, SELF_CHECKS, badCallError, compareEngines, runSelfCheck } from './selfcheck.js';
import { runKvSelfCheck } from './selfcheck-kv.js';

const flags = {
  backend: flag.choice(['wasm', 'cuda'] as const, 'only this engine (default: both)'),
  threads: flag.int('N', 'worker threads of the wasm engine (default: the cores)', 1),
  filter: flag.text('TEXT', "only the checks whose name contains TEXT (e.g. 'Lq=10 Lk=20')"),
  seed: flag.int('N', "the inputs' seed (default: a fresh one, printed to replay)", 0, 0xffffffff),
};

export const doctorCommand: CommandSpec<typeof flags> = {
  name: 'doctor',
  summary: 'which engines load and why (not), then self-checks on each against the float64 reference and each other',
  flags,
};

export async function doctor(o: Values<typeof flags>, log: (s: string) => void, debug = false): Promise<number> {
  const only: BackendName | undefined = o.backend;
  const threads = o.threads;
  const filter = o.filter;
  const seed = o.seed ?? (Math.random() * 2 ** 32) >>> 0;
  const names: BackendName[] = only ? [only] : ['wasm', 'cuda'];

  log(`flashattn doctor — Node ${process.version}, ${process.platform}-${process.arch}`);
  const engines: { name: string; engine: Engine; device: boolean }[] = [];
  for (const name of names) {
    try {
      const engine = await createEngine({ backend: name, threads });
      const info = Object.entries(engine.info)
        .map(([k, v]) => `${k}=${v}`)
        .join(', ');
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

  let passed = 0,
    failed = 0,
    skipped = 0;
  const checks = SELF_CHECKS.filter((c) => !filter || c.name.includes(filter));
  const threw = (e: unknown) => (debug ? ((e as Error).stack ?? String(e)) : ((e as Error).message ?? String(e)));
  log(`\nself-checks against the float64 reference (seed ${seed}; replay with --seed ${seed})`);
  for (const { name, engine, device } of engines) {
    let p = 0,
      f = 0,
      s = 0;
    for (let i = 0; i < checks.length; i++) {
      const c = checks[i]!;
      const r = await runSelfCheck(engine, c, seed + i, device).catch((e: unknown) => ({
        name: c.name,
        ok: false,
        detail: `threw ${threw(e)}`,
        skipped: undefined,
      }));
      if (r.skipped) {
        s++;
        log(`  [${name}] skip ${r.name}: ${r.skipped}`);
      } else if (r.ok) p++;
      else {
        f++;
        log(`  [${name}] FAIL ${r.name}: ${r.detail}`);
      }
    }
    if (!device && !filter)
      for (const [j, dtype] of (['float32', 'float16', 'bfloat16'] as const).entries()) {
        const r = await runKvSelfCheck(engine, dtype, seed + 100 + j).catch((e: unknown) => ({
          name: `KV cache decode step (${dtype} cache)`,
          ok: false,
          detail: `threw ${threw(e)}`,
        }));
        if (r.ok) p++;
        else {
          f++;
          log(`  [${name}] FAIL ${r.name}: ${r.detail}`);
        }
      }
    log(`  ${name}: ${p} passed, ${f} failed, ${s} skipped`);
    passed += p;
    failed += f;
    skipped += s;
  }
  // With two engines: the same inputs must give the same function, the same bad input the same error.
  const hosts = engines.filter((e) => !e.device);
  for (let i = 1; i < hosts.length; i++) {
    const a = hosts[i]!,
      b = hosts[0]!;
    const label = `${a.name} vs ${b.name}`;
    let p = 0,
      f = 0;
    for (let j = 0; j < checks.length; j++) {
      const r = await compareEngines(a.engine, b.engine, checks[j]!, seed + j).catch((e: unknown) => ({
        name: checks[j]!.name,
        ok: false,
        detail: `threw ${threw(e)}`,
      }));
      if (r.ok) p++;
      else {
        f++;
        log(`  [${label}] FAIL ${r.name}: ${r.detail}`);
      }
    }
    for (const [what, call] of BAD_CALLS) {
      const [ea, eb] = [await badCallError(a.engine, call), await badCallError(b.engine, call)];
      const same = ea !== null && eb !== null && ea.constructor === eb.constructor && ea.message === eb.message;
      if (same) p++;
      else {
        f++;
        log(
          `  [${label}] FAIL bad input '${what}': ${a.name}: ${ea?.message ?? 'accepted'}; ${b.name}: ${eb?.message ?? 'accepted'}`,
        );
      }
    }
    log(`  ${label} (same outputs, same errors word for word): ${p} passed, ${f} failed`);
    passed += p;
    failed += f;
  }
  for (const e of new Set(engines.map((x) => x.engine))) await e.dispose();
  if (engines.length === 0) {
    log('no engine could be loaded');
    return 1;
  }
  log(`\ndoctor: ${passed} passed, ${failed} failed, ${skipped} skipped`);
  return failed === 0 ? 0 : 1;
}
