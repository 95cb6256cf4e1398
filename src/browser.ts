/**
 * The browser (and edge runtime) entry, chosen by package.json's `browser` export condition. It
 * exports what src/index.ts exports, typed against src/types.ts (checked below, as esbuild keeps
 * its node and browser entries in step), and imports no Node module: the engine is WebAssembly on
 * Web Workers, and `backend: 'cuda'` fails with one line.
 */
import { createEngineWith, type Loaders } from './engine.js';
import type { Engine, EngineOptions, WasmSources } from './types.js';
import { createBrowserWasmBackend } from './wasm/backend-browser.js';

export * from './api.js';

const CUDA_IN_BROWSER = "the cuda engine needs Node and the native addon; in a browser use backend 'wasm'";

/** The kernel next to the package: dist/browser.js -> ../build/wasm/. */
function packageWasm(): WasmSources {
  const here = import.meta.url as string | undefined;
  if (typeof here !== 'string') {
    throw new Error(
      'flashattn cannot locate its wasm files (this bundle has no import.meta.url); ' +
        "pass createEngine({ wasm }) with `import { wasmInline as wasm } from 'flashattn/wasm-inline'`",
    );
  }
  return {
    baseline: new URL('../build/wasm/flashattn.wasm', here),
    relaxed: new URL('../build/wasm/flashattn-relaxed.wasm', here),
  };
}

const browserLoaders: Loaders = {
  cuda: async () => {
    throw new Error(CUDA_IN_BROWSER);
  },
  wasm: (o) => createBrowserWasmBackend({ threads: o.threads, wasm: o.wasm ?? packageWasm() }),
};

/**
 * Creates an engine: always WebAssembly here ('auto' says why not cuda in `fallbackReason`);
 * threads > 1 need a cross-origin isolated page, else one worker computes (`info.threadsReason`).
 */
export function createEngine(options: EngineOptions = {}): Promise<Engine> {
  return createEngineWith(browserLoaders, options);
}

// Both entries export the same values with the same types: this line stops compiling if they drift.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const entriesAgree: Same<typeof import('./index.js'), typeof import('./browser.js')> = true;
void entriesAgree;
