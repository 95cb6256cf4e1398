// The cuda test files' engine: one per file, or null with the reason (printed, and put in the describe's
// title) where the addon does not load or sees no GPU, so the suites skip instead of failing.
import { spawnSync } from 'node:child_process';
import { loadCudaBackend } from '../src/cuda/backend.js';
import { createEngine } from '../src/node.js';
import type { Engine } from '../src/types.js';

export async function cudaEngineOrReason(what: string): Promise<{ engine: Engine | null; reason: string }> {
  try {
    await loadCudaBackend();
    return { engine: await createEngine({ backend: 'cuda' }), reason: '' };
  } catch (e) {
    const reason = (e as Error).message;
    console.log(`[flashattn] ${what} skipped: ${reason}`);
    return { engine: null, reason };
  }
}

/**
 * Runs `body` in a child Node with --expose-gc, after `engine` (a cuda engine of the built package) and
 * `addon` (its addon) are set up; the body prints one JSON line last, which is returned (a failed child
 * throws with its stderr). For tests of memory that the garbage collector gives back.
 */
export function inChildWithGc(body: string): Record<string, number> {
  const node = new URL('../dist/node.js', import.meta.url).pathname;
  const addonJs = new URL('../dist/cuda/backend.js', import.meta.url).pathname;
  const script = `
    import { createEngine } from ${JSON.stringify(node)};
    import { cudaAddon } from ${JSON.stringify(addonJs)};
    const engine = await createEngine({ backend: 'cuda' });
    const addon = cudaAddon();
    ${body}
    await engine.dispose();
  `;
  const run = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (run.status !== 0) throw new Error(`the child exited with ${run.status}: ${run.stderr}`);
  return JSON.parse(run.stdout.trim().split('\n').pop()!);
}
