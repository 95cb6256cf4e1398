/**
 * `flashattn bench`: the WebAssembly engine on the CPU workloads A–F (src/cli/bench/workloads.ts),
 * float32, at each thread count: flashattn, and for the decode workloads flashattn with K and V resident and
 * with the history in a KV cache (float32 and float16); every output is checked against the float64 reference. Needs only the package itself.
 *
 *   flashattn bench [--threads 1,2] [--only A,C] [--quick] [--json FILE] [--seed N] [--retries N]
 *
 * The peers (onnxruntime-node, onnxruntime-web, a naive JS loop) are a separate package in the
 * repository (bench/cpu/, `npm run bench:setup && npm run bench`), which builds on BenchRun below.
 */
import { type CommandSpec, type Values, flag } from './args.js';
import { BUSY_CORES } from './bench/interference.js';
import { KV_VARIANTS, engineMeasurements } from './bench/kvcache.js';
import { type BenchOptions, type BenchReport, type BenchResult, BenchRun, fmt, tableFooter } from './bench/run.js';
import { WORKLOADS } from './bench/workloads.js';

export * from './bench/run.js';

export const PEERS_LINE =
  'peers: onnxruntime-node, onnxruntime-web and the naive JS loop run from a clone of the repository: npm run bench:setup && npm run bench';

const WORKLOAD_IDS = WORKLOADS.map((w) => w.id);

export const benchFlags = {
  threads: flag.intList('N,N', 'thread counts, one engine each (default 1,2)', 1),
  only: flag.choiceList(WORKLOAD_IDS.join(','), WORKLOAD_IDS, 'only these workloads (default: all)'),
  quick: flag.bool('a few iterations per measurement (a smoke run: the numbers are rough)'),
  json: flag.text('FILE', 'also writes the whole report as JSON to FILE'),
  seed: flag.int('N', 'seed of the inputs (default 1234)', 0, 0xffffffff),
  retries: flag.int(
    'N',
    'measures again (after waiting for a quiet machine) when other processes disturbed a\nmeasurement, up to N times (default 3; 0 with --quick)',
    0,
  ),
};

export const benchCommand: CommandSpec<typeof benchFlags> = {
  name: 'bench',
  summary: 'times the wasm engine on the CPU workloads A–F at each thread count, every output verified',
  details: [
    'workloads (float32):',
    ...WORKLOADS.map((w) => `  ${w.id}  ${w.title}`),
    'GFLOP/s = FlashAttention FLOPs (4 · kept (query, key) pairs · heads · d) / median time.',
    PEERS_LINE.replace(/^peers: /, 'against peers: '),
  ].join('\n'),
  flags: benchFlags,
};

export function benchOptions(v: Values<typeof benchFlags>): BenchOptions {
  const quick = v.quick === true;
  return {
    threads: v.threads ?? [1, 2],
    only: v.only ?? WORKLOAD_IDS,
    quick,
    json: v.json,
    seed: v.seed ?? 1234,
    retries: v.retries ?? (quick ? 0 : 3),
  };
}

/** `flashattn bench`: prints progress, the table and the peers line through `log`; rejects if any output is wrong. */
export async function runBench(
  opt: BenchOptions,
  log: (line: string) => void,
  args: string[] = [],
): Promise<BenchReport> {
  const run = new BenchRun(opt, args, log, (workloads, extra) => opt.threads.length * (workloads + extra));
  run.header('flashattn bench (wasm engine, CPU)');
  const prepared = run.prepare();
  try {
    for (const t of opt.threads) {
      log('');
      log(`-- ${t} thread${t > 1 ? 's' : ''}`);
      for (const p of prepared) {
        const e = await run.engine(t);
        if (typeof e === 'string') run.unavailable('flashattn', t, e, engineMeasurements(p.d.w));
        else await run.measureEngine(e, p, t);
      }
      await run.release(t);
    }
  } finally {
    for (const t of opt.threads) await run.release(t);
  }
  run.finish(engineTable(run.report, opt.threads));
  log(PEERS_LINE);
  return run.report;
}

/** The engine's table (markdown): one row per workload and thread count, resident K/V rows after. */
export function engineTable(report: BenchReport, threads: number[]): string[] {
  const get = (w: string, impl: string, t: number) =>
    report.results.find((r) => r.workload === w && r.impl === impl && r.threads === t);
  const row = (name: string, t: number, r: BenchResult | undefined, bw: boolean) =>
    r
      ? `| ${name} | ${t} | ${fmt(r.medianMs, 2)} | ${fmt(r.gflops, 1)}${bw ? ` (${fmt(r.gbps!, 1)} GB/s)` : ''}${r.othersCores > BUSY_CORES ? ' ⚠' : ''} | ${r.ok ? '✓' : '✗'} ${r.maxErr.toExponential(1)} |`
      : `| ${name} | ${t} | — | — | — |`;
  const lines = [
    '',
    'flashattn (wasm engine), GFLOP/s of the median run (C, F also GB/s of K and V read):',
    '',
    '| workload | threads | median ms | GFLOP/s | max err |',
    '| --- | ---: | ---: | ---: | ---: |',
  ];
  for (const w of report.workloads) {
    const bw = WORKLOADS.find((x) => x.id === w.id)?.reportBandwidth === true;
    for (const t of threads) lines.push(row(w.id, t, get(w.id, 'flashattn', t), bw));
    const variants = [
      ['flashattn (resident K/V)', 'resident K/V'],
      ...KV_VARIANTS.map((v) => [v.impl, `${v.label}, bs 16`]),
    ];
    for (const [impl, name] of variants)
      for (const t of threads) {
        const r = get(w.id, impl!, t);
        if (r) lines.push(row(`${w.id}, ${name}`, t, r, bw));
      }
  }
  return [...lines, ...tableFooter(report)];
}
