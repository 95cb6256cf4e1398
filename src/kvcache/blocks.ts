/**
 * A block allocator for the paged KV cache, for callers without a scheduler of their own: it hands out the
 * pool's blocks to sequences as they grow, takes them back, and writes the `cacheSeqlens`, `blockTable` and
 * `cuSeqlensNew` of a call.
 */
import { intIn, rangeErr, readKey, typeErr, words } from '../errors.js';
import { MAX_ROWS } from './layout.js';
import type { KvCacheWriteOptions } from './types.js';

interface Seq {
  length: number;
  blocks: number[];
}

/**
 * Sequences' blocks in a pool of `numBlocks` blocks of `blockSize` rows (a `KvCache`, or the two numbers).
 * Each sequence holds exactly the blocks its length needs, in order: `ceil(length / blockSize)`. It only does
 * the bookkeeping; the engine call writes the rows. Sequence ids are never reused, so a freed id stays invalid.
 *
 * `batch(seqs, newTokens)` grows the sequences by `newTokens` rows each (all or none: a RangeError naming the
 * pool when its free blocks do not suffice) and returns the options of the call that writes those rows: the
 * lengths before (`cacheSeqlens`), the block table after (unused entries -1) and `cuSeqlensNew`. If that call
 * is then rejected, `truncate` each sequence back to its `cacheSeqlens` entry.
 *
 * @example
 * ```ts
 * const cache = await engine.createKvCache({ numBlocks: 1024, blockSize: 16, numKvHeads: 2, headDim: 64 });
 * const blocks = new KvBlocks(cache);
 * const a = blocks.addSequence(), b = blocks.addSequence();
 * // Prefill two prompts of 7 and 12 tokens (q [19, 8, 64], k and v [19, 2, 64], packed): their keys are the
 * // sequences' first rows, and each prompt attends causally to itself.
 * await engine.attentionWithKvCache(q, cache, {
 *   ...blocks.batch([a, b], [7, 12]),
 *   cuSeqlensQ: Int32Array.of(0, 7, 19), kNew: k, vNew: v, causal: true,
 * });
 * // Decode: one token per sequence and step (q1 [2, 8, 64], k1 and v1 [2, 2, 64]).
 * for (let step = 0; step < 100; step++) {
 *   const { q1, k1, v1 } = nextTokens();
 *   const { out } = await engine.attentionWithKvCache(q1, cache, {
 *     ...blocks.batch([a, b], 1),
 *     cuSeqlensQ: Int32Array.of(0, 1, 2), kNew: k1, vNew: v1, causal: true,
 *   });
 *   // ... out [2, 8, 64]; a sequence that ends: blocks.free(a), and leave it out of the next batch.
 * }
 * blocks.free(a);
 * blocks.free(b);
 * cache.dispose();
 * ```
 * Speculative decoding: write the draft's rows with `batch([s], 1 + drafts)`, then `truncate(s, c + 1 + accepted)`.
 */
export class KvBlocks {
  readonly numBlocks: number;
  readonly blockSize: number;
  /** Free block ids; the last is handed out next (lowest ids first, freed blocks reused first). */
  readonly #free: number[];
  readonly #seqs = new Map<number, Seq>();
  #next = 0;

  constructor(pool: number | { readonly numBlocks: number; readonly blockSize: number }, blockSize?: number) {
    let n: unknown = pool,
      bs: unknown = blockSize;
    if (pool !== null && typeof pool === 'object') {
      if (blockSize !== undefined) throw typeErr('no blockSize with a cache (it has its own)', 'blockSize', blockSize);
      n = readKey(pool, 'numBlocks', 'pool.numBlocks');
      bs = readKey(pool, 'blockSize', 'pool.blockSize');
    }
    this.numBlocks = intIn(n, 'numBlocks', 1, MAX_ROWS, 'a block count from 1 to 2^31 - 1 (or a KvCache)');
    this.blockSize = intIn(bs, 'blockSize', 1, MAX_ROWS);
    this.#free = Array.from({ length: this.numBlocks }, (_, i) => this.numBlocks - 1 - i);
  }

  /** Blocks not held by any sequence. */
  get freeBlocks(): number {
    return this.#free.length;
  }

  /** The live sequences, oldest first. */
  get sequences(): number[] {
    return [...this.#seqs.keys()];
  }

  /** A new empty sequence (length 0, no block); returns its id. */
  addSequence(): number {
    const id = this.#next++;
    this.#seqs.set(id, { length: 0, blocks: [] });
    return id;
  }

  #seq(seq: unknown, name = 'seq'): Seq {
    const s = typeof seq === 'number' ? this.#seqs.get(seq) : undefined;
    if (s) return s;
    if (typeof seq !== 'number') throw typeErr('a sequence id (from addSequence)', name, seq);
    throw rangeErr('a live sequence of this KvBlocks (from addSequence, not freed)', name, seq);
  }

  /** Rows the sequence holds (what the next call passes as its `cacheSeqlens` entry). */
  length(seq: number): number {
    return this.#seq(seq).length;
  }

  /** The sequence's block ids, in order (a copy). */
  blocks(seq: number): number[] {
    return [...this.#seq(seq).blocks];
  }

  /** More blocks the sequences need to grow by these counts; a RangeError, naming the pool, past its free blocks. */
  #need(seqs: Seq[], counts: number[]): number {
    let need = 0,
      total = 0;
    seqs.forEach((s, i) => {
      if (s.length + counts[i]! > MAX_ROWS)
        throw rangeErr(
          `at most ${MAX_ROWS} rows per sequence`,
          'newTokens',
          words(`${counts[i]} more rows for a sequence of ${s.length}`),
        );
      need += Math.ceil((s.length + counts[i]!) / this.blockSize) - s.blocks.length;
      total += counts[i]!;
    });
    if (need > this.#free.length)
      throw rangeErr(
        `new rows that fit in the free blocks of this KvBlocks pool (${this.#free.length} of ${this.numBlocks} blocks of ${this.blockSize} rows free)`,
        'newTokens',
        words(`${total} new rows, which need ${need} more blocks`),
      );
    return need;
  }

  #grow(s: Seq, count: number): void {
    s.length += count;
    while (s.blocks.length * this.blockSize < s.length) s.blocks.push(this.#free.pop()!);
  }

  /** Grows the sequence by `newTokens` rows, taking blocks as it fills them (RangeError when the pool runs out). */
  grow(seq: number, newTokens: number): void {
    const s = this.#seq(seq);
    const n = intIn(newTokens, 'newTokens', 0, MAX_ROWS);
    this.#need([s], [n]);
    this.#grow(s, n);
  }

  /** Keeps the first `length` rows (at most the sequence's length) and gives back the blocks past them. */
  truncate(seq: number, length: number): void {
    const s = this.#seq(seq);
    s.length = intIn(length, 'length', 0, s.length, `an integer from 0 to the sequence's length (${s.length})`);
    const keep = Math.ceil(s.length / this.blockSize);
    while (s.blocks.length > keep) this.#free.push(s.blocks.pop()!);
  }

  /** Ends the sequence: its blocks return to the pool and its id becomes invalid. */
  free(seq: number): void {
    const s = this.#seq(seq);
    while (s.blocks.length > 0) this.#free.push(s.blocks.pop()!);
    this.#seqs.delete(seq);
  }

  /**
   * The options of one call on these sequences, in this order (sequence i of the call is `seqs[i]`), after
   * growing each by `newTokens` (one count for all, or one per sequence; default 0: a call that only reads).
   * `cacheSeqlens` are the lengths before, `blockTable` (`[seqs.length * maxBlocksPerSeq]`, with
   * `maxBlocksPerSeq` the most blocks a sequence holds after, -1 past each one's last) the blocks after, and
   * `cuSeqlensNew` the prefix sums of the counts. Spread it into `writeKvCache` or `attentionWithKvCache`'s options.
   */
  batch(seqs: readonly number[], newTokens: number | readonly number[] = 0): KvCacheWriteOptions {
    if (!Array.isArray(seqs)) throw typeErr('an array of sequence ids', 'seqs', seqs);
    const ids = [...seqs] as number[];
    const list = ids.map((id, i) => this.#seq(id, `seqs[${i}]`));
    if (new Set(ids).size !== ids.length) throw rangeErr('distinct sequences (a call writes each once)', 'seqs', ids);
    let counts: number[];
    if (Array.isArray(newTokens)) {
      counts = [...newTokens] as number[];
      if (counts.length !== ids.length) throw rangeErr(`${ids.length} counts, one per sequence`, 'newTokens', counts);
      counts = counts.map((c, i) => intIn(c, `newTokens[${i}]`, 0, MAX_ROWS));
    } else counts = ids.map(() => intIn(newTokens, 'newTokens', 0, MAX_ROWS));
    const cuSeqlensNew = new Int32Array(ids.length + 1);
    counts.forEach((c, i) => {
      const end = cuSeqlensNew[i]! + c;
      if (end > MAX_ROWS) throw rangeErr(`at most ${MAX_ROWS} new rows in all`, 'newTokens', words(`${end} or more`));
      cuSeqlensNew[i + 1] = end;
    });
    this.#need(list, counts);
    const cacheSeqlens = Int32Array.from(list, (s) => s.length);
    for (let i = 0; i < list.length; i++) this.#grow(list[i]!, counts[i]!);
    const m = list.reduce((w, s) => Math.max(w, s.blocks.length), 0);
    const blockTable = new Int32Array(ids.length * m).fill(-1);
    for (let i = 0; i < list.length; i++) blockTable.set(list[i]!.blocks, i * m);
    return { cacheSeqlens, blockTable, cuSeqlensNew };
  }
}
