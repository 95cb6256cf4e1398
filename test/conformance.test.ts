// The conformance suite: every case of test/conformance/cases.ts on every engine, on fresh seeded
// inputs (FLASHATTN_SEED=<n> replays a run), against the float64 reference.
import { afterAll, describe, expect, it } from 'vitest';
import { caseId, cases } from './conformance/cases.js';
import { freshSeed } from './conformance/random.js';
import { runCase } from './conformance/run.js';
import { enginesUnderTest } from './engines.js';

const seed = freshSeed();
const engines = await enginesUnderTest();

afterAll(async () => {
  for (const e of engines) await e.engine?.dispose();
});

for (const e of engines) {
  describe.skipIf(!e.engine)(`conformance on ${e.name}${e.engine ? '' : ` (skipped: ${e.reason})`}`, () => {
    cases.forEach((c, i) => {
      it(caseId(c), async (ctx) => {
        const r = await runCase(e.engine!, c, seed + i, { device: e.device });
        if (r.skipped) {
          ctx.skip(r.skipped);
          return;
        }
        expect(r.ok, `${r.id}: ${r.detail} (tolerance ${r.tolerance}); replay with FLASHATTN_SEED=${seed}`).toBe(true);
      });
    });
  });
}
