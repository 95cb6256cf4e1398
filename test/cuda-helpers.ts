// The cuda test files' engine: one per file, or null with the reason (printed, and put in the describe's
// title) where the addon does not load or sees no GPU, so the suites skip instead of failing.
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
