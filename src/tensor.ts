import type { DType, Float16ArrayLike, HostData, Tensor } from './types.js';
import { readHostTensor } from './validate.js';

/**
 * Builds a host tensor: `Float32Array` data is 'float32', a `Float16Array` is 'float16', `Uint16Array`
 * data needs `dtype` ('float16' or 'bfloat16'). Checks the data against the shape.
 */
export function tensor(data: HostData | Float16ArrayLike, shape: readonly number[], dtype?: DType): Tensor {
  return readHostTensor({ data, shape, dtype }, 'tensor');
}
