// Engines against each other on the same inputs (cuda against wasm where a GPU is present; two
// wasm thread counts everywhere, so the comparison itself always runs), and bad input refused by
// both with the same words.
import { afterAll, describe, expect, it } from 'vitest';
import { caseId, cases } from './conformance/cases.js';
import { badCalls, compareEngines, compareErrors } from './conformance/cross.js';
import { freshSeed } from './conformance/random.js';
import { enginesUnderTest } from './engines.js';

const seed = freshSeed();
const all = await enginesUnderTest();
const get = (name: string) => all.find((e) => e.name === name)!;
const pairs = [
  [get('wasm threads=2'), get('wasm threads=1')],
  [get('cuda'), get('wasm threads=1')],
] as const;

afterAll(async () => {
  for (const e of all) await e.engine?.dispose();
});

for (const [a, b] of pairs) {
  const why = a.engine ? '' : ` (skipped: ${a.reason})`;
  describe.skipIf(!a.engine || !b.engine)(`${a.name} against ${b.name}${why}`, () => {
    it.each(cases.map((c, i) => [caseId(c), c, i] as const))('%s', async (_id, c, i) => {
      const r = await compareEngines(a.engine!, b.engine!, c, seed + i);
      expect(r.ok, `${r.id}: ${r.detail}; replay with FLASHATTN_SEED=${seed}`).toBe(true);
    });
    it.each(badCalls)('bad input, same error: %s', async (_name, call) => {
      const r = await compareErrors(a.engine!, b.engine!, call);
      expect(r.ok, r.detail).toBe(true);
    });
  });
}
