/** The cuda engine's device tensors: a buffer of the addon, bound to the engine that made it. */
import type { AnyTensor, DType, DeviceTensor } from '../types.js';
import type { NativeBuffer } from './addon.js';

export const bytesOf = (dtype: DType) => (dtype === 'float32' ? 4 : 2);
export const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** A tensor in GPU memory, made by one engine. The buffer is private, so a spread copy is not one. */
export class CudaTensor implements DeviceTensor {
  readonly location = 'cuda' as const;
  readonly #buffer: NativeBuffer;
  readonly #owner: object;

  constructor(
    readonly shape: readonly number[],
    readonly dtype: DType,
    buffer: NativeBuffer,
    owner: object,
    /** A KV cache's k or v: the cache frees the buffer, so this tensor's dispose() does nothing. */
    readonly held = false,
  ) {
    this.shape = Object.freeze([...shape]);
    this.#buffer = buffer;
    this.#owner = owner;
  }

  static bufferOf(t: AnyTensor, name: string, engine: object): NativeBuffer {
    if (!(t instanceof CudaTensor))
      throw new TypeError(
        `Expected a device tensor made by this engine (upload or a cuda result) for ${name} but received a plain object`,
      );
    if (t.#owner !== engine)
      throw new TypeError(
        `Expected a device tensor made by this engine for ${name} but received one of another cuda engine (another stream); download() it from that engine`,
      );
    if (t.#buffer.disposed)
      throw new TypeError(`Expected a live device tensor for ${name} but received one that was disposed`);
    const need = sizeOf(t.shape) * bytesOf(t.dtype);
    if (t.#buffer.bytes < need)
      throw new RangeError(`Expected ${need} bytes of device memory for ${name} but received ${t.#buffer.bytes}`);
    return t.#buffer;
  }

  dispose(): void {
    if (!this.held) this.#buffer.dispose();
  }

  /** Frees the buffer whoever holds it (a KV cache's dispose). */
  static release(t: CudaTensor): void {
    t.#buffer.dispose();
  }
}
