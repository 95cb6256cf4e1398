/** What both entries (src/index.ts for Node, src/browser.ts) export besides createEngine: one list, so they cannot drift. */
export type {
  AnyTensor,
  AttentionOptions,
  AttentionResult,
  BackendName,
  DType,
  DeviceTensor,
  Engine,
  EngineOptions,
  Float16ArrayLike,
  HostData,
  InputTensor,
  OrtTensorLike,
  ResultTensor,
  Tensor,
  TensorInput,
  TensorLike,
  VarlenOptions,
  WasmSource,
  WasmSources,
} from './types.js';
export { tensor } from './tensor.js';
export { referenceAttention, referenceAttentionVarlen } from './reference.js';
export type { ReferenceResult } from './reference.js';
export { f16ToF32, bf16ToF32, f32ToF16, f32ToBf16, encode, decode } from './half.js';
export { attentionFlops } from './flops.js';
export type {
  KvCache,
  KvCacheCallOptions,
  KvCacheContents,
  KvCacheOptions,
  KvCacheWriteOptions,
} from './kvcache/types.js';
export { KvBlocks } from './kvcache/blocks.js';
export { referenceAttentionWithKvCache } from './kvcache/reference.js';
export type { KvReferenceResult } from './kvcache/reference.js';
export { mergeAttention } from './merge.js';
export type { AttentionPart, MergedAttention } from './merge.js';
