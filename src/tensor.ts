import type { DType, HostData, Tensor } from './types.js';

/** Builds a host tensor; `Float32Array` data defaults to 'float32', `Uint16Array` data needs a dtype. */
export function tensor(data: HostData, shape: readonly number[], dtype?: DType): Tensor {
  const dt = dtype ?? (data instanceof Float32Array ? 'float32' : undefined);
  if (dt === undefined)
    throw new TypeError("Expected dtype 'float16' or 'bfloat16' for a Uint16Array tensor but received undefined");
  return { data, shape: [...shape], dtype: dt, location: 'cpu' };
}
