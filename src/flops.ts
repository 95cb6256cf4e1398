import { problemFlops } from './problem.js';
import type { AttentionOptions, InputTensor, VarlenOptions } from './types.js';
import { validateFixed, validateVarlen } from './validate.js';

/**
 * FlashAttention's FLOP count of a call (2 products of 2 FLOPs per multiply-add over the (query, key)
 * pairs the mask keeps: `2 * kept * numHeads * (headDim + headDimV)`), for GFLOP/s figures that
 * compare with other implementations. Options with `cuSeqlensQ` mean the packed form.
 */
export function attentionFlops(
  q: InputTensor,
  k: InputTensor,
  v: InputTensor,
  options: AttentionOptions | VarlenOptions = {},
): number {
  const varlen = options !== null && typeof options === 'object' && 'cuSeqlensQ' in options;
  return problemFlops(varlen ? validateVarlen(q, k, v, options as VarlenOptions) : validateFixed(q, k, v, options));
}
