/**
 * Compiles the kernel in a browser or an edge runtime from what `options.wasm` names (by default
 * the files next to the package): the relaxed-SIMD build where a 60-byte probe validates (so only
 * one file is fetched), else the baseline build. URLs stream into WebAssembly.compileStreaming;
 * a single thread gets an unshared memory, so its kernel is compiled from rewritten bytes instead.
 */
import type { WasmSource, WasmSources } from '../types.js';
import type { CompiledKernel } from './core.js';
import { relaxedSimdSupported, unshareMemoryImport } from './unshare.js';

export interface LoadedKernel extends CompiledKernel {
  /** Whether the kernel imports a shared memory (false: compiled from bytes for one thread). */
  shared: boolean;
}

const HINT =
  "serve the package's build/wasm/ there, or pass createEngine({ wasm: { baseline, relaxed } }) (README: In the browser)";

function isSource(s: unknown): s is WasmSource {
  return (
    typeof s === 'string' ||
    s instanceof URL ||
    s instanceof ArrayBuffer ||
    ArrayBuffer.isView(s) ||
    s instanceof WebAssembly.Module
  );
}

function describe(s: WasmSource): string {
  if (typeof s === 'string' || s instanceof URL) return String(s);
  return s instanceof WebAssembly.Module ? 'a WebAssembly.Module' : `${s.byteLength} bytes`;
}

export function checkSources(w: unknown): asserts w is WasmSources {
  if (w === null || typeof w !== 'object')
    throw new TypeError(`Expected { baseline, relaxed? } for options.wasm but received ${String(w)}`);
  for (const key of ['baseline', 'relaxed'] as const) {
    const s = (w as Record<string, unknown>)[key];
    if ((s !== undefined || key === 'baseline') && !isSource(s))
      throw new TypeError(
        `Expected a URL, bytes or a WebAssembly.Module for options.wasm.${key} but received ${s === null ? 'null' : typeof s}`,
      );
  }
}

function canShareMemory(): boolean {
  try {
    return new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true }).buffer instanceof Object;
  } catch {
    return false;
  }
}

async function compileBytes(bytes: Uint8Array, shared: boolean): Promise<WebAssembly.Module> {
  return WebAssembly.compile(shared ? new Uint8Array(bytes) : unshareMemoryImport(bytes));
}

async function compileSource(s: WasmSource, shared: boolean): Promise<WebAssembly.Module> {
  if (s instanceof WebAssembly.Module) return s;
  if (s instanceof ArrayBuffer) return compileBytes(new Uint8Array(s), shared);
  if (ArrayBuffer.isView(s)) return compileBytes(new Uint8Array(s.buffer, s.byteOffset, s.byteLength), shared);
  const url = new URL(s, globalThis.location?.href);
  let res: Response;
  try {
    res = await fetch(url);
  } catch (e) {
    throw new Error(`could not fetch ${url.href} (${(e as Error).message}); ${HINT}`);
  }
  if (!res.ok) throw new Error(`HTTP ${res.status} for ${url.href}; ${HINT}`);
  const streaming =
    shared &&
    typeof WebAssembly.compileStreaming === 'function' &&
    (res.headers.get('content-type') ?? '').split(';')[0]!.trim() === 'application/wasm';
  if (streaming) return WebAssembly.compileStreaming(res);
  return compileBytes(new Uint8Array(await res.arrayBuffer()), shared);
}

/**
 * `unshared`: the engine will compute on one thread, whose memory need not be shared (needed
 * outside cross-origin isolation in browsers that refuse shared memories). A module passed in
 * cannot be rewritten, so it keeps a shared memory, where the runtime allows one.
 */
export async function loadKernel(sources: WasmSources, unshared: boolean): Promise<LoadedKernel> {
  checkSources(sources);
  const relaxed = sources.relaxed !== undefined && relaxedSimdSupported();
  const source = relaxed ? sources.relaxed! : sources.baseline;
  const shared = !unshared || source instanceof WebAssembly.Module;
  if (shared && !canShareMemory()) {
    throw new Error(
      'this runtime refuses shared WebAssembly memory, and a compiled WebAssembly.Module cannot be rewritten ' +
        'for an unshared one; pass the bytes of the kernel in options.wasm instead',
    );
  }
  let module: WebAssembly.Module;
  try {
    module = await compileSource(source, shared);
  } catch (e) {
    const why = (e as Error).message;
    if (e instanceof WebAssembly.CompileError)
      throw new Error(
        `the wasm kernel (${describe(source)}) does not compile here; it needs WebAssembly SIMD and threads (atomics): ${why}`,
      );
    throw e;
  }
  return { module, simd: relaxed ? 'relaxed' : 'baseline', source: describe(source), shared };
}
