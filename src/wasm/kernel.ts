/**
 * The wasm kernel's two builds (baseline and relaxed SIMD): read, validated and compiled once per
 * engine, the relaxed one where this WebAssembly engine accepts it.
 */
import { knobs } from '../knobs.js';
import type { Platform } from './platform.js';

export interface WasmFiles {
  baseline: URL;
  relaxed: URL;
}

/** A kernel the host compiled itself (the browser entry: compileStreaming, or a module the user passed), in place of files. */
export interface CompiledKernel {
  module: WebAssembly.Module;
  simd: 'relaxed' | 'baseline';
  /** Where it came from (info.wasm). */
  source: string;
}

export interface WasmBackendOptions {
  /** Threads to compute on; default: the available cores. 1 runs on the calling thread, with no worker. */
  threads?: number;
  /**
   * 'auto' (default; also FLASHATTN_WASM_SIMD): the relaxed-SIMD build when this WebAssembly
   * engine validates it, else the baseline build. 'relaxed' fails where it does not validate.
   */
  simd?: 'auto' | 'relaxed' | 'baseline';
  /**
   * false: a memory of the calling thread only, for hosts without SharedArrayBuffer; needs threads = 1
   * and a kernel compiled to import an unshared memory (unshare.ts). Default true.
   */
  sharedMemory?: boolean;
  /** Compute on workers even for one thread (a page's main thread must not compute). Default false. */
  offThread?: boolean;
}

export interface KernelExports {
  run(params: number, thread: number): void;
  heapBase(): number;
  scratchBytes(D: number, Dv: number): number;
  slotBytes(Dv: number): number;
}

async function readKernel(platform: Platform, url: URL): Promise<Uint8Array<ArrayBuffer>> {
  try {
    return await platform.readBytes(url);
  } catch (e) {
    throw new Error(
      `cannot read the wasm kernel ${url.href} (build it with \`npm run build:wasm\`): ${(e as Error).message}`,
      { cause: e },
    );
  }
}

export async function compileKernel(
  platform: Platform,
  files: WasmFiles,
  simdOption: WasmBackendOptions['simd'],
): Promise<CompiledKernel> {
  const want = simdOption ?? knobs.wasmSimd;
  if (want !== 'auto' && want !== 'relaxed' && want !== 'baseline')
    throw new RangeError(`Expected 'auto', 'relaxed' or 'baseline' for simd but received ${JSON.stringify(want)}`);

  let simd: 'relaxed' | 'baseline' = 'baseline';
  let url = files.baseline;
  let bytes: Uint8Array<ArrayBuffer> | null = null;
  if (want !== 'baseline') {
    // 'auto' falls back to the baseline build when the relaxed one is missing or rejected
    const relaxed =
      want === 'relaxed'
        ? await readKernel(platform, files.relaxed)
        : await readKernel(platform, files.relaxed).catch(() => null);
    if (relaxed && WebAssembly.validate(relaxed)) {
      simd = 'relaxed';
      url = files.relaxed;
      bytes = relaxed;
    } else if (want === 'relaxed')
      throw new Error(
        "this WebAssembly engine rejects relaxed SIMD (Node 20 needs --experimental-wasm-relaxed-simd); use simd: 'auto'",
      );
  }
  if (!bytes) {
    bytes = await readKernel(platform, files.baseline);
    if (!WebAssembly.validate(bytes))
      throw new Error('this WebAssembly engine does not support SIMD with shared memory (threads)');
  }
  return { module: await WebAssembly.compile(bytes), simd, source: url.href };
}
