// The engines every shared suite runs on. An engine that cannot be created here is skipped with
// its loader's reason, printed once.
import { createEngine } from '../src/node.js';
import type { Engine, EngineOptions } from '../src/types.js';

export interface EngineUnderTest {
  name: string;
  engine: Engine | null;
  reason: string;
  /** Run the cases through device tensors too. */
  device: boolean;
}

async function make(name: string, options: EngineOptions, device = false): Promise<EngineUnderTest> {
  try {
    return { name, engine: await createEngine(options), reason: '', device };
  } catch (e) {
    const reason = (e as Error).message;
    console.log(`[flashattn] skipping engine ${name}: ${reason}`);
    return { name, engine: null, reason, device };
  }
}

export async function enginesUnderTest(): Promise<EngineUnderTest[]> {
  return [
    await make('wasm threads=1', { backend: 'wasm', threads: 1 }),
    await make('wasm threads=2', { backend: 'wasm', threads: 2 }),
    await make('cuda', { backend: 'cuda' }),
    await make('cuda device-tensors', { backend: 'cuda' }, true),
  ];
}
