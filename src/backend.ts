/** The internal contract between the façade and an engine. Users never see it. */
import type { Problem } from './problem.js';
import type { AnyTensor, BackendName, DeviceTensor, Tensor } from './types.js';

export interface BackendOutput {
  /** In the problem's dtype, shaped `p.outShape`. */
  out: AnyTensor;
  /** float32, shaped `p.lseShape`; null unless `p.returnLse`. */
  lse: AnyTensor | null;
}

export interface Backend {
  readonly name: BackendName;
  readonly threads: number;
  readonly info: Readonly<Record<string, string | number | boolean>>;
  /**
   * Why this engine cannot run a validated problem (null when it can). The façade throws it as a
   * RangeError before any work; the conformance suite uses the same predicate to skip a case.
   */
  unsupported(p: Problem<AnyTensor>): string | null;
  run(p: Problem<AnyTensor>): Promise<BackendOutput>;
  /**
   * Engines that keep resident tensors (location 'wasm') check a problem's: made by this engine and
   * not disposed, else a TypeError. The façade refuses resident tensors for engines without it.
   */
  checkInputs?(p: Problem<AnyTensor>): void;
  upload?(t: Tensor): Promise<DeviceTensor>;
  /** Settles when every call made so far has (engines whose calls all settle before resolving need none). */
  synchronize?(): Promise<void>;
  download?(t: DeviceTensor): Promise<Tensor>;
  dispose(): Promise<void>;
}
