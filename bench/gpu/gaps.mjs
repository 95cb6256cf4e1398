#!/usr/bin/env node
// The GPU's idle time between back-to-back kernels on one engine's stream (cuda/probe.h): probe kernels
// that spin a fixed time, launched as the attention kernels are (with programmatic dependent launch) and
// without it, and with a stream-ordered allocation and free between launches (a call's new out). The gap
// is the next kernel's first block start minus the previous kernel's last block end, from %globaltimer.
//   node bench/gpu/gaps.mjs [--launches 200] [--spin-us 20]
const { cudaAddon, loadCudaBackend } = await import('../../dist/cuda/backend.js');
await loadCudaBackend(); // throws, with the reason, without a GPU
const argv = process.argv.slice(2);
const opt = (name, dflt) => (argv.includes(name) ? Number(argv[argv.indexOf(name) + 1]) : dflt);
const addon = cudaAddon();
const ctx = new addon.Context();
const launches = opt('--launches', 200),
  spinUs = opt('--spin-us', 20);
const q = (xs, f) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(f * xs.length))];
for (const blocks of [132, 1056])
  for (const dependent of [true, false])
    for (const allocBetween of [0, 1 << 20]) {
      await addon.launchGaps(ctx, { launches: 20, blocks, spinUs, dependent, allocBetween }); // warm-up
      const g = await addon.launchGaps(ctx, { launches, blocks, spinUs, dependent, allocBetween });
      console.log(
        `${blocks} blocks, ${dependent ? 'PDL' : 'plain'}${allocBetween ? ', alloc+free between' : ''}: gap us median ${q(g, 0.5).toFixed(2)}, p10 ${q(g, 0.1).toFixed(2)}, p90 ${q(g, 0.9).toFixed(2)}`,
      );
    }
await ctx.dispose();
