#!/usr/bin/env node
// Joins bench.mjs and torch_bench.py output into one table (markdown): TFLOP/s for dense and
// varlen shapes, GB/s of K+V read for decode, and flashattn / FA2 (FA2 = the faster of SDPA's
// FLASH_ATTENTION and varlen_attn).
//   node bench/gpu/table.mjs ours.jsonl torch.jsonl [> table.md]
import { readFileSync } from 'node:fs';

const rows = process.argv.slice(2).flatMap((f) => {
  try {
    return readFileSync(f, 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l));
  } catch {
    return [];
  }
});
const dev = rows.find((r) => r.impl === 'device');
const key = (r) => `${r.dtype}|${r.shape}`;
const by = new Map();
for (const r of rows) {
  if (r.impl === 'device' || r.forced) continue;
  if (!by.has(key(r))) by.set(key(r), {});
  by.get(key(r))[r.impl] = r;
}
const fmt = (r, decode) => (!r ? '' : r.ms == null ? 'n/a' : decode ? r.gbps.toFixed(0) : r.tflops.toFixed(0));
const lines = [];
if (dev)
  lines.push(
    `${dev.name}, torch ${dev.torch}, device-to-device copy ${dev.copyGBps.toFixed(0)} GB/s (read + write)`,
    '',
  );
// An A/B run (bench.mjs --impl "flashattn base") adds the other build's numbers and new/base.
const ab = rows.some((r) => r.impl === 'flashattn base');
lines.push(
  `| dtype | shape | flashattn | FA2 sdpa | FA2 varlen | cuDNN sdpa | vs FA2 | flashattn ms |${ab ? ' base | base vs FA2 | new/base |' : ''}`,
);
lines.push(`| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |${ab ? ' ---: | ---: | ---: |' : ''}`);
for (const [k, g] of by) {
  const [dtype, shape] = k.split('|');
  const ours = g.flashattn;
  if (!ours) continue;
  const decode = ours.kind === 'decode';
  const fa2 = [g['FA2 sdpa'], g['FA2 varlen_attn']].filter((r) => r && r.ms != null).sort((a, b) => a.ms - b.ms)[0];
  const ratio = fa2 ? (fa2.ms / ours.ms).toFixed(2) : '';
  const unit = decode ? ' GB/s' : '';
  const base = g['flashattn base'];
  const abCols = !ab
    ? ''
    : !base
      ? ' | | |'
      : ` ${fmt(base, decode)} | ${fa2 ? (fa2.ms / base.ms).toFixed(2) : ''} | ${(base.ms / ours.ms).toFixed(3)} |`;
  lines.push(
    `| ${dtype === 'bfloat16' ? 'bf16' : 'f16'} | ${shape} | ${fmt(ours, decode)}${unit} | ${fmt(g['FA2 sdpa'], decode)} | ${fmt(g['FA2 varlen_attn'], decode)} | ${fmt(g['cuDNN sdpa'], decode)} | ${ratio} | ${ours.ms.toFixed(3)} |${abCols}`,
  );
}
// The call as a user sees it (wall clock, ms): awaited (call + synchronize) and per call with 20 in flight.
const calls = [...by].filter(([, g]) => g.flashattn?.callMs != null);
if (calls.length) {
  const c = (r) => (r?.callMs != null ? `${r.callMs.toFixed(3)} / ${r.inflightMs.toFixed(3)}` : '');
  lines.push(
    '',
    '| dtype | shape | kernel ms (median / mean of 30) | call ms: awaited back to back | call + synchronize / 20 in flight | awaited - kernel | 20 in flight - kernel | FA2 sdpa call: + synchronize / 20 in flight | FA2 varlen call | cuDNN call |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  );
  for (const [k, g] of calls) {
    const [dtype, shape] = k.split('|');
    const o = g.flashattn;
    lines.push(
      `| ${dtype === 'bfloat16' ? 'bf16' : 'f16'} | ${shape} | ${o.ms.toFixed(3)}${o.kernelMeanMs != null ? ` / ${o.kernelMeanMs.toFixed(3)}` : ''} | ${o.awaitedMs?.toFixed(3) ?? ''} | ${c(o)} | ${o.interleaved ? `${o.interleaved.overUs.toFixed(0)} us (interleaved)` : o.awaitedMs != null ? `${((o.awaitedMs - (o.kernelMeanMs ?? o.ms)) * 1e3).toFixed(0)} us` : ''} | ${o.interleaved?.inflightOverPct != null ? `${o.interleaved.inflightOverPct.toFixed(1)}% (interleaved)` : ''} | ${c(g['FA2 sdpa'])} | ${c(g['FA2 varlen_attn'])} | ${c(g['cuDNN sdpa'])} |`,
    );
  }
}
const e2e = rows.filter((r) => r.impl.startsWith('flashattn e2e'));
if (e2e.length) {
  const link = rows.find((r) => r.impl === 'link');
  if (link)
    lines.push(
      '',
      `Pinned copies measured in this run: ${link.toDeviceGBps.toFixed(1)} GB/s to the GPU, ${link.fromDeviceGBps.toFixed(1)} GB/s back; host memcpy into pinned ${link.hostCopyGBps.toFixed(1)} GB/s on ${link.copyThreads} threads${link.registeredGBps != null ? `; page-locked in place and copied ${link.registeredGBps.toFixed(1)} GB/s` : ''}.`,
    );
  lines.push(
    '',
    '| end to end from typed arrays (copies included) | arrays | dtype | MB in / out | ms | floor: bytes / link + kernel, ms | vs floor |',
    '| --- | --- | --- | ---: | ---: | ---: | ---: |',
  );
  for (const r of e2e)
    lines.push(
      `| ${r.shape} | ${r.impl.includes('pinned') ? `pinned hostTensor, into out${r.sameAsPlain === false ? ' (DIFFERS)' : ''}` : r.impl.includes('reused') ? 'plain, into a reused out' : 'plain, new result'} | ${r.dtype} | ${r.bytesIn != null ? `${(r.bytesIn / 1e6).toFixed(0)} / ${(r.bytesOut / 1e6).toFixed(0)}` : ''} | ${r.ms.toFixed(2)} | ${r.floorMs?.toFixed(2) ?? ''} | ${r.vsFloor?.toFixed(2) ?? ''} |`,
    );
}
// The KV cache (bench/gpu/kvbench.mjs) beside the peers on the same keys, contiguous (torch.jsonl).
const kv = rows.filter((r) => r.impl === 'flashattn kv' || r.impl === 'flashattn kv loop');
if (kv.length) {
  const peerOf = (r) => {
    const m = /^kv decode b(\d+) (\d+)k/.exec(r.shape);
    const name = m ? `decode 32/8 heads ${m[2]}k keys b${m[1]}` : 'chunked prefill 8x512 over 4k d128';
    const g = by.get(`${r.dtype}|${name}`) ?? {};
    return m ? g['cuDNN sdpa'] : g['FA2 varlen_attn'];
  };
  lines.push(
    '',
    '| KV cache (paged) | dtype | kernel ms | GB/s (K+V) / TF/s | call awaited ms | awaited - kernel | 20 in flight ms | host ms per call (addon) | flat kernel ms | peer (cuDNN decode / FA2 varlen) |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  );
  for (const r of kv) {
    const decode = r.shape.includes('decode');
    const peer = peerOf(r);
    const rate = (x) => (decode ? `${x.gbps.toFixed(0)} GB/s` : `${x.tflops.toFixed(0)} TF/s`);
    lines.push(
      `| ${r.shape} | ${r.dtype === 'bfloat16' ? 'bf16' : 'f16'} | ${r.ms.toFixed(3)} | ${rate(r)} | ${r.awaitedMs.toFixed(3)} | ${r.interleaved ? `${r.interleaved.overUs.toFixed(0)} us (interleaved)` : `${((r.awaitedMs - r.ms) * 1e3).toFixed(0)} us`} | ${r.inflightMs.toFixed(3)} | ${r.hostMs != null ? `${r.hostMs.toFixed(3)} (${r.addonMs.toFixed(3)})` : ''} | ${r.flatMs?.toFixed(3) ?? ''} | ${peer?.ms != null ? `${rate(peer)} (${peer.ms.toFixed(3)} ms)` : ''} |`,
    );
  }
}
/** A small table: a blank line, the header and its rule, one line per row (none when there are no rows). */
const section = (list, header, align, line) => {
  if (!list.length) return;
  lines.push('', `| ${header.join(' | ')} |`, `| ${align.join(' | ')} |`);
  for (const r of list) lines.push(`| ${line(r).join(' | ')} |`);
};
section(
  rows.filter((r) => r.impl === 'flashattn f32'),
  ['float32 inputs (kernel)', 'precision', 'plan', 'ms', 'TF/s', 'GB/s'],
  ['---', '---', '---', '---:', '---:', '---:'],
  (r) => [r.shape, r.precision, r.plan, r.ms.toFixed(3), r.tflops.toFixed(1), r.gbps.toFixed(0)],
);
section(
  rows.filter((r) => r.forced),
  ['tuning run', 'dtype', 'forced', 'plan', 'ms', 'TFLOP/s', 'GB/s'],
  ['---', '---', '---', '---', '---:', '---:', '---:'],
  (r) => [r.shape, r.dtype, r.forced, r.plan, r.ms.toFixed(3), r.tflops.toFixed(0), r.gbps.toFixed(0)],
);
console.log(lines.join('\n'));
