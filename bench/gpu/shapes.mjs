// The benchmark shapes, shared by bench.mjs (this engine) and torch_bench.py (peers, which
// reads `node bench/gpu/shapes.mjs --json`), so both time exactly the same problems.
const shapes = [];
const TOKENS = 16384,
  WIDTH = 2048;
for (const dtype of ['bfloat16', 'float16']) {
  for (const headDim of [64, 128]) {
    for (const causal of [false, true]) {
      for (const seqlen of [512, 1024, 2048, 4096, 8192, 16384]) {
        const batch = TOKENS / seqlen,
          heads = WIDTH / headDim;
        shapes.push({
          name: `dense d${headDim} ${causal ? 'causal' : 'full'} ${seqlen}`,
          kind: 'dense',
          dtype,
          seqlensQ: Array(batch).fill(seqlen),
          seqlensK: Array(batch).fill(seqlen),
          numHeads: heads,
          numKvHeads: heads,
          headDim,
          causal,
        });
      }
    }
  }
  // Bottom-right causal with Lq != Lk: 2k queries against 8k keys, 2 sequences.
  shapes.push({
    name: 'causal 2k q x 8k k d128',
    kind: 'dense',
    dtype,
    seqlensQ: [2048, 2048],
    seqlensK: [8192, 8192],
    numHeads: 16,
    numKvHeads: 16,
    headDim: 128,
    causal: true,
  });
  const ragged = [512, 3000, 128, 7000, 1024, 4000];
  shapes.push({
    name: 'varlen [512..7000] d128 causal',
    kind: 'varlen',
    dtype,
    seqlensQ: ragged,
    seqlensK: ragged,
    numHeads: 16,
    numKvHeads: 16,
    headDim: 128,
    causal: true,
  });
  for (const batch of [32, 128])
    for (const lk of [4096, 32768]) {
      shapes.push({
        name: `decode 32/8 heads ${lk / 1024}k keys b${batch}`,
        kind: 'decode',
        dtype,
        seqlensQ: Array(batch).fill(1),
        seqlensK: Array(batch).fill(lk),
        numHeads: 32,
        numKvHeads: 8,
        headDim: 128,
        causal: true,
        // batch 128: the peers only (kvbench.mjs times ours on a cache; host inputs of 17 GB are not made here)
        peerOnly: batch > 32,
      });
    }
  // A chunked prefill (the KV cache benchmark's, bench/gpu/kvbench.mjs): 8 x 512 new rows over 4k cached.
  shapes.push({
    name: 'chunked prefill 8x512 over 4k d128',
    kind: 'varlen',
    dtype,
    seqlensQ: Array(8).fill(512),
    seqlensK: Array(8).fill(4608),
    numHeads: 32,
    numKvHeads: 8,
    headDim: 128,
    causal: true,
  });
}

/** Pairs visible under the (bottom-right) mask, for FLOP counts. */
export function keptPairs(s) {
  let kept = 0;
  s.seqlensQ.forEach((lq, b) => {
    const lk = s.seqlensK[b];
    if (!s.causal) {
      kept += lq * lk;
      return;
    }
    for (let i = 0; i < lq; i++) kept += Math.max(0, Math.min(lk, i + lk - lq + 1));
  });
  return kept;
}

export function flops(s) {
  return 4 * keptPairs(s) * s.numHeads * s.headDim;
}

/** Bytes of K and V read (decode's measure). */
export function kvBytes(s) {
  return 2 * s.seqlensK.reduce((a, b) => a + b, 0) * s.numKvHeads * s.headDim * 2;
}

export { shapes };

// --json [--match regex] [--dtype bfloat16]: the shapes (optionally a subset) for torch_bench.py.
if (process.argv.includes('--json')) {
  const arg = (name) => {
    const i = process.argv.indexOf(name);
    return i >= 0 ? process.argv[i + 1] : null;
  };
  const match = arg('--match'),
    dtype = arg('--dtype');
  const chosen = shapes.filter((s) => (!match || new RegExp(match).test(s.name)) && (!dtype || s.dtype === dtype));
  process.stdout.write(JSON.stringify(chosen.map((s) => ({ ...s, flops: flops(s), kvBytes: kvBytes(s) }))));
}
