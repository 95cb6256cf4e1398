/** The dims every engine's KV cache object carries (src/kvcache/types.ts KvCache), from its validated spec. */
import type { DType } from '../types.js';
import type { KvCacheSpec } from './problem.js';

export abstract class KvCacheDims {
  readonly numBlocks: number;
  readonly blockSize: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly headDimV: number;
  readonly dtype: DType;

  constructor(spec: KvCacheSpec) {
    this.numBlocks = spec.numBlocks;
    this.blockSize = spec.blockSize;
    this.numKvHeads = spec.numKvHeads;
    this.headDim = spec.headDim;
    this.headDimV = spec.headDimV;
    this.dtype = spec.dtype;
  }
}
