/**
 * What an engine's KV cache methods receive (src/backend.ts): calls validated once by src/kvcache/validate.ts,
 * so that an engine reads the block table without a bounds check and writes without a conflict check.
 */
import type { Problem } from '../problem.js';
import type { DType, HostData } from '../types.js';
import type { KvCache } from './types.js';

/** Validated `createKvCache` options, defaults filled in. `numBlocks * blockSize` is at most 2^31 - 1 rows. */
export interface KvCacheSpec {
  readonly numBlocks: number;
  readonly blockSize: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly headDimV: number;
  readonly dtype: DType;
}

/**
 * One validated write of new rows into the cache: `writeKvCache` alone, and the first step of every
 * `attentionWithKvCache`. `C` is the cache: the engine's own `KvCache` (the façade checked that this engine
 * made it and that it is not disposed); for the reference, the host contents.
 *
 * Guarantees, so an engine checks nothing again:
 * - for every sequence `b` and position `p < seqlensK[b]`, `blockTable[b * maxBlocksPerSeq + floor(p /
 *   blockSize)]` is a block id in `[0, numBlocks)` (entries past a sequence's last block are not checked:
 *   never read them);
 * - `seqlensK[b] = cacheSeqlens[b] + n_b <= maxBlocksPerSeq * blockSize` and `<= 2^31 - 1`;
 * - no two new rows (of one sequence or of two) land on the same (block, row);
 * - kNew/vNew (if any) are `[totalNew, numKvHeads, headDim(V)]` in the cache's dtype, host tensors or
 *   tensors on the cache's side (the engine checks those are its own and not disposed).
 *
 * Sequences may share blocks they only read, and one may read a block another one writes: every write of a
 * call happens before any of its reads, so that reader sees the new rows. An engine that fuses the write into
 * its attention kernel must keep that order (or write first, as the reference does).
 */
export interface KvWrite<D = HostData, C = KvCache> extends KvCacheSpec {
  readonly cache: C;
  /** `[totalNew, numKvHeads, headDim]`, or null when the call writes nothing (then `totalNew = 0`). */
  readonly kNew: D | null;
  /** `[totalNew, numKvHeads, headDimV]`, or null with `kNew`. */
  readonly vNew: D | null;
  /** `[batch + 1]`: sequence b's new rows are `cuSeqlensNew[b] .. cuSeqlensNew[b + 1] - 1`, written at `c .. c + n - 1`. All zeros without kNew. */
  readonly cuSeqlensNew: Int32Array;
  /** `[batch]`: `c`, the rows each sequence holds before the call (a copy: the caller may reuse theirs). */
  readonly cacheSeqlens: Int32Array;
  /** `[batch]`: `Lk = c + n`, the rows each sequence holds after the write (what attention reads). */
  readonly seqlensK: Int32Array;
  /** `[batch * maxBlocksPerSeq]`, row-major (a copy). */
  readonly blockTable: Int32Array;
  /** `blockTable.length / batch` (0 when batch is 0). */
  readonly maxBlocksPerSeq: number;
  readonly batch: number;
  /** Rows of kNew/vNew. */
  readonly totalNew: number;
  /** The largest `n`. */
  readonly maxSeqlenNew: number;
  /** The largest `Lk`. */
  readonly maxSeqlenK: number;
}

/**
 * One validated `attentionWithKvCache`: the write above, then attention of sequence b's queries
 * (`cuSeqlensQ`) over its keys at positions `0 .. seqlensK[b] - 1` read through the block table. The
 * attention fields are the Problem's (docs/semantics.md, "The function"), packed form only
 * (`fixedSeqlenQ = 0`, `outShape [totalQ, numHeads, headDimV]`, `lseShape [numHeads, totalQ]`), with
 * `Lk = seqlensK[b]`: windows (`windowLeft`, `windowRight`, causal folded in) are bottom-right aligned
 * against it, and a width of at least `maxSeqlenQ + maxSeqlenK` is stored as -1 (unbounded), as in
 * src/validate.ts. `numHeads` is a multiple of the cache's `numKvHeads`; q's head h reads cache head
 * `floor(h / (numHeads / numKvHeads))`. It equals the Problem of `attentionVarlen` on the concatenated keys
 * (src/kvcache/reference.ts builds exactly that).
 */
export interface KvProblem<D = HostData, C = KvCache>
  extends Omit<Problem<D>, 'k' | 'v' | 'cuSeqlensK' | 'totalK'>,
    KvWrite<D, C> {}
