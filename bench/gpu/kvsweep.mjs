#!/usr/bin/env node
// The paged decode kernel against the cache's block size (issue 13: 16-row blocks read faster than 256-row
// blocks or one block per sequence, with the same instructions and addresses): b32, 32/8 heads, d128, 32k
// keys, bf16, read-only calls (backend.timeKv, mean of 30), for block sizes 16 .. 32768 with the sequential
// block table kvbench uses, and 16-row blocks with the table shuffled.
//   node bench/gpu/kvsweep.mjs [--lk 32768] [--batch 32]    (lk a multiple of 4096)
import { loadCudaBackend } from '../../dist/cuda/backend.js';
import { engineFromBackend } from '../../dist/engine.js';
import { validateKvCall } from '../../dist/kvcache/validate.js';

const argv = process.argv.slice(2);
const opt = (name, dflt) => (argv.includes(name) ? Number(argv[argv.indexOf(name) + 1]) : dflt);
const [B, H, Hk, D, lk] = [opt('--batch', 32), 32, 8, 128, opt('--lk', 32768)];
const dtype = 'bfloat16';
const backend = await loadCudaBackend();
const engine = engineFromBackend(backend);
const half = (n) => Uint16Array.from({ length: n }, (_, i) => 0x3f00 | ((i * 2654435761) % 127));
const CHUNK = 4096;
const chunk = await engine.upload({ data: half(CHUNK * Hk * D), shape: [CHUNK, Hk, D], dtype });
const q = await engine.upload({ data: half(B * H * D), shape: [B, H, D], dtype });
let seed = 7;
const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
for (const [bs, shuffled] of [
  [16, false],
  [16, true],
  [32, false],
  [64, false],
  [128, false],
  [256, false],
  [lk, false],
]) {
  const per = Math.ceil(lk / bs);
  const cache = await engine.createKvCache({ numBlocks: B * per, blockSize: bs, numKvHeads: Hk, headDim: D, dtype });
  const blockTable = Int32Array.from({ length: B * per }, (_, i) => i);
  if (shuffled)
    for (let i = blockTable.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [blockTable[i], blockTable[j]] = [blockTable[j], blockTable[i]];
    }
  for (let b = 0; b < B; b++)
    for (let at = 0; at < lk; at += CHUNK)
      await engine.writeKvCache(cache, chunk, chunk, {
        cacheSeqlens: Int32Array.of(at),
        blockTable: blockTable.subarray(b * per, (b + 1) * per),
        cuSeqlensNew: Int32Array.of(0, Math.min(CHUNK, lk - at)),
      });
  const p = validateKvCall({ spec: cache, location: 'cuda', cache }, q, {
    cuSeqlensQ: Int32Array.from({ length: B + 1 }, (_, i) => i),
    cacheSeqlens: new Int32Array(B).fill(lk),
    blockTable,
    causal: true,
  });
  await backend.timeKv(p, 5);
  const ms = [];
  for (let r = 0; r < 3; r++) ms.push((await backend.timeKv(p, 30)).meanMs);
  ms.sort((a, b) => a - b);
  const gbps = (2 * B * lk * Hk * D * 2) / (ms[1] * 1e6);
  console.log(
    `bs ${String(bs).padStart(5)}${shuffled ? ' shuffled' : '         '}: ${ms[1].toFixed(3)} ms, ${gbps.toFixed(0)} GB/s`,
  );
  cache.dispose();
  await engine.synchronize();
}
