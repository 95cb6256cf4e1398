/** The wasm engine's resident tensors: tensors in one engine's WebAssembly memory (upload, a KV cache's k and v). */
import type { AnyTensor, DType, DeviceTensor } from '../types.js';
import type { Block } from './plan.js';

/** The engine a resident tensor lives in: what frees its block. */
export interface TensorOwner {
  release(block: Block, t: WasmTensor): void;
}

/**
 * A tensor resident in one wasm engine's memory (`engine.upload`, or a KV cache's `k` and `v`): calls
 * of that engine read it in place. The block and the engine are private, so a spread copy is not a
 * resident tensor. A cache's tensors belong to the cache (`part`): their dispose() does nothing (the
 * cache's frees them), and they keep the cache alive, so its finalizer cannot free a tensor still in use.
 */
export class WasmTensor implements DeviceTensor {
  readonly location = 'wasm' as const;
  readonly #owner: TensorOwner;
  readonly #block: Block;
  readonly #part: object | null;

  constructor(
    readonly shape: readonly number[],
    readonly dtype: DType,
    owner: TensorOwner,
    block: Block,
    part: object | null = null,
  ) {
    this.shape = Object.freeze([...shape]);
    this.#owner = owner;
    this.#block = block;
    this.#part = part;
  }

  /** The block of a live tensor uploaded to `owner`; a TypeError naming the fix otherwise. */
  static blockOf(t: AnyTensor, name: string, owner: TensorOwner): Block {
    if (!(t instanceof WasmTensor)) {
      if (t.location === 'cuda')
        throw new TypeError(
          `Expected a host or wasm-resident tensor for ${name} but received a cuda tensor; download() it first`,
        );
      throw new TypeError(
        `Expected a tensor made by this wasm engine's upload() for ${name} but received a plain object with location 'wasm'`,
      );
    }
    if (t.#owner !== owner)
      throw new TypeError(
        `Expected a tensor resident in this wasm engine for ${name} but received one uploaded to another engine; download() it from that engine (and upload() it to this one)`,
      );
    if (!t.#block.live)
      throw new TypeError(
        `Expected a live resident tensor for ${name} but received one that was disposed${t.#part ? ' (its KV cache was disposed)' : ''}`,
      );
    return t.#block;
  }

  dispose(): void {
    if (this.#part === null) this.#owner.release(this.#block, this);
  }
}
