/**
 * `flashattn doctor`: which engines load here and why (not), then the conformance cases on each.
 * It needs only the built package (no test framework): this is how the GPU machine is checked.
 */
import { caseId, cases } from '../conformance/cases.js';
import { freshSeed } from '../conformance/random.js';
import { runCase } from '../conformance/run.js';
import { createEngine } from '../node.js';
import type { BackendName, Engine } from '../types.js';
import { parseFlags } from './args.js';

export async function doctor(args: string[], log: (s: string) => void): Promise<number> {
  const flags = parseFlags(args);
  const only = flags.get('backend') as BackendName | undefined;
  const threads = flags.has('threads') ? Number(flags.get('threads')) : undefined;
  const filter = flags.get('filter');
  const seed = flags.has('seed') ? Number(flags.get('seed')) >>> 0 : freshSeed();
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
        log(`  [${name}] FAIL ${caseId(c)}: threw ${(e as Error).stack ?? e}`);
      }
    }
    log(`  ${name}: ${p} passed, ${f} failed, ${s} skipped`);
    passed += p; failed += f; skipped += s;
  }
  for (const e of new Set(engines.map((x) => x.engine))) await e.dispose();
  if (engines.length === 0) { log('no engine could be loaded'); return 1; }
  log(`\ndoctor: ${passed} passed, ${failed} failed, ${skipped} skipped`);
  return failed === 0 ? 0 : 1;
}
