/**
 * The KV cache's layout rules (docs/semantics.md, "KV cache (paged)"): lengths, the block table, and where
 * the new rows land, checked before anything is written so that a rejected call leaves the cache as it was.
 */
import { rangeErr, typeErr, words } from '../errors.js';
import { isView } from '../inputs.js';
import type { KvCacheSpec } from './problem.js';

/** Rows of a tensor or a sequence: offsets and lengths are int32. */
export const MAX_ROWS = 2 ** 31 - 1;

/** A copy of a real Int32Array (TypeError otherwise): engines read it after the call returned, the caller may reuse theirs. */
export function int32(x: unknown, name: string): Int32Array {
  if (!isView(x, Int32Array)) throw typeErr('an Int32Array', name, x);
  return new Int32Array(x);
}

export { checkCuSeqlens } from '../validate.js';

export interface Layout {
  cacheSeqlens: Int32Array;
  seqlensK: Int32Array;
  blockTable: Int32Array;
  maxBlocksPerSeq: number;
  maxSeqlenNew: number;
  maxSeqlenK: number;
}

/**
 * cacheSeqlens and blockTable of `batch` sequences whose new rows are split by `cuNew` (`batchFrom` names
 * the offsets batch was read from): lengths >= 0, `c + n` within int32 and within the sequence's
 * `maxBlocksPerSeq * blockSize`, every block a sequence holds after the call (positions `0 .. c + n - 1`)
 * an id in `[0, numBlocks)`, and no (block, row) written twice.
 */
export function checkLayout(
  spec: KvCacheSpec,
  batch: number,
  batchFrom: string,
  cacheSeqlensIn: unknown,
  blockTableIn: unknown,
  cuNew: Int32Array,
): Layout {
  const cacheSeqlens = int32(cacheSeqlensIn, 'options.cacheSeqlens');
  if (cacheSeqlens.length !== batch)
    throw rangeErr(`length batch = ${batch} (${batchFrom}.length - 1)`, 'options.cacheSeqlens', cacheSeqlens);
  const blockTable = int32(blockTableIn, 'options.blockTable');
  if (batch === 0 ? blockTable.length !== 0 : blockTable.length % batch !== 0)
    throw rangeErr(
      `a length that is a multiple of batch = ${batch} (batch x maxBlocksPerSeq)`,
      'options.blockTable',
      blockTable,
    );
  const m = batch === 0 ? 0 : blockTable.length / batch;
  const bs = spec.blockSize,
    numBlocks = spec.numBlocks;
  const seqlensK = new Int32Array(batch);
  let maxSeqlenNew = 0,
    maxSeqlenK = 0;
  for (let b = 0; b < batch; b++) {
    const c = cacheSeqlens[b]!,
      n = cuNew[b + 1]! - cuNew[b]!;
    if (c < 0) throw rangeErr('lengths >= 0', 'options.cacheSeqlens', words(`options.cacheSeqlens[${b}] = ${c}`));
    const lk = c + n;
    if (lk > MAX_ROWS)
      throw rangeErr(
        `at most ${MAX_ROWS} rows per sequence (cacheSeqlens + new rows; positions are int32)`,
        'options.cacheSeqlens',
        words(`sequence ${b}: ${c} + ${n} = ${lk} rows`),
      );
    if (lk > m * bs)
      throw rangeErr(
        `at most maxBlocksPerSeq x blockSize = ${m} x ${bs} = ${m * bs} rows per sequence (cacheSeqlens + new rows)`,
        'options.blockTable',
        words(`sequence ${b}: ${c} + ${n} = ${lk} rows`),
      );
    seqlensK[b] = lk;
    maxSeqlenNew = Math.max(maxSeqlenNew, n);
    maxSeqlenK = Math.max(maxSeqlenK, lk);
    const held = Math.ceil(lk / bs);
    // This runs over the whole table on every call of a decode step, so without a branch per entry: the
    // sign bit of id | (numBlocks - 1 - id) is set exactly when id is outside [0, numBlocks); the entry is
    // looked for only when one is.
    const first = b * m,
      last = numBlocks - 1;
    let bad = 0;
    for (let i = first; i < first + held; i++) {
      const id = blockTable[i]!;
      bad |= id | (last - id);
    }
    let j = held;
    if (bad < 0) {
      j = 0;
      while (blockTable[first + j]! >>> 0 < numBlocks) j++;
    }
    if (j < held) {
      const id = blockTable[first + j]!;
      throw rangeErr(
        `block ids in [0, numBlocks = ${spec.numBlocks}) (every block a sequence holds after the call)`,
        'options.blockTable',
        words(
          `blockTable[${b * m + j}] = ${id} (sequence ${b}, its block ${j}: positions ${j * bs} to ${Math.min(lk, (j + 1) * bs) - 1})`,
        ),
      );
    }
  }
  checkDistinctWrites(bs, batch, m, cacheSeqlens, seqlensK, blockTable);
  return { cacheSeqlens, seqlensK, blockTable, maxBlocksPerSeq: m, maxSeqlenNew, maxSeqlenK };
}

/**
 * No (block, row) gets two new rows: the rows each sequence writes, as runs of rows inside one block, sorted
 * by block and first row; a run that starts before an earlier run of its block ends is a conflict.
 */
function checkDistinctWrites(
  bs: number,
  batch: number,
  m: number,
  cacheSeqlens: Int32Array,
  seqlensK: Int32Array,
  blockTable: Int32Array,
): void {
  const block: number[] = [],
    lo: number[] = [],
    hi: number[] = [],
    seq: number[] = [];
  for (let b = 0; b < batch; b++) {
    const c = cacheSeqlens[b]!,
      lk = seqlensK[b]!;
    if (lk === c) continue;
    for (let j = Math.floor(c / bs); j * bs < lk; j++) {
      block.push(blockTable[b * m + j]!);
      lo.push(Math.max(c, j * bs) - j * bs);
      hi.push(Math.min(lk, (j + 1) * bs) - j * bs);
      seq.push(b);
    }
  }
  if (block.length < 2) return;
  const order = Array.from(block, (_, i) => i).sort((x, y) => block[x]! - block[y]! || lo[x]! - lo[y]!);
  let prev = -1,
    end = 0,
    endSeq = -1;
  for (const i of order) {
    if (block[i] !== prev) {
      prev = block[i]!;
      end = 0;
    }
    if (lo[i]! < end) {
      const who = endSeq === seq[i] ? `twice by sequence ${endSeq}` : `by sequences ${endSeq} and ${seq[i]}`;
      throw rangeErr(
        'new rows on distinct (block, row) pairs (one call writes a row once)',
        'options.blockTable',
        words(`block ${prev} row ${lo[i]} written ${who}`),
      );
    }
    if (hi[i]! > end) {
      end = hi[i]!;
      endSeq = seq[i]!;
    }
  }
}
