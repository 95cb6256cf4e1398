/**
 * `flashattn bench`: the CPU benchmark. The WebAssembly engine against onnxruntime-node (CPU EP),
 * onnxruntime-web (wasm backend) and a naive JavaScript loop, float32, at each thread count, in one
 * run; every output is checked against the float64 reference. See BENCHMARKS.md.
 *
 *   node dist/cli.js bench [--threads 1,2] [--only A,C] [--quick] [--json FILE] [--seed N]
 */
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { naiveAttention } from '../bench/naive.js';
import type { OrtPlan, PeerRun, PeerRunner } from '../bench/peers.js';
import { loadOrtNode, loadOrtWeb, ortPlans } from '../bench/peers.js';
import type { Timing, TimingPolicy } from '../bench/timing.js';
import { BUSY_CORES, othersCores, waitQuiet } from '../bench/interference.js';
import { FULL, QUICK, measure } from '../bench/timing.js';
import { checkAgainst } from '../bench/verify.js';
import type { Check } from '../bench/verify.js';
import type { WorkloadData } from '../bench/workloads.js';
import { WORKLOADS, makeWorkloadData } from '../bench/workloads.js';
import { createEngine } from '../node.js';
import { referenceProblem } from '../reference.js';
import type { DeviceTensor, Engine, Tensor } from '../types.js';
import { parseFlags } from './args.js';

export const IMPLS = ['flashattn', 'flashattn (resident K/V)', 'onnxruntime-node', 'onnxruntime-web', 'naive JS'] as const;
export type ImplName = (typeof IMPLS)[number];

export interface BenchResult {
  workload: string;
  impl: ImplName;
  threads: number;
  /** The operator a peer ran (onnxruntime), or how the call was made. */
  op?: string;
  medianMs: number;
  minMs: number;
  runs: number;
  gflops: number;
  /** GB/s of K and V read (decode workload only). */
  gbps?: number;
  maxErr: number;
  ok: boolean;
  /** Average cores other processes used during this measurement (see interference.ts). */
  othersCores: number;
}

export interface BenchReport {
  date: string;
  node: string;
  cpu: string;
  cores: number;
  loadavgStart: number[];
  loadavgEnd: number[];
  /** Average cores other processes used over the whole run. */
  othersCores: number;
  args: string[];
  quick: boolean;
  seed: number;
  versions: Record<string, string>;
  /** Why an implementation did not run, when it did not. */
  unavailable: Record<string, string>;
  workloads: { id: string; title: string; gflop: number; kvMB: number; peersPerSequence: boolean }[];
  results: BenchResult[];
  /** Every onnxruntime candidate tried before picking the fastest. */
  screening: BenchResult[];
  failures: string[];
}

/** Screening of onnxruntime candidates: ranked by their fastest run (robust to a noisy neighbour). */
const SCREEN: TimingPolicy = { warmup: 1, minIters: 3, maxIters: 3, minTimeMs: 0, maxTimeMs: 1000 };
const NAIVE_FULL: TimingPolicy = { warmup: 1, minIters: 3, maxIters: 7, minTimeMs: 3000, maxTimeMs: 6000 };
const NAIVE_QUICK: TimingPolicy = { warmup: 1, minIters: 1, maxIters: 1, minTimeMs: 0, maxTimeMs: 0 };

const usage = `usage: flashattn bench [--threads 1,2] [--only A,B,C,D,E] [--quick] [--json FILE] [--seed N] [--retries N]
  --retries N  measure again (after waiting for a quiet machine) when other processes disturbed a
               measurement, up to N times (default 3; 0 with --quick)`;

function parseArgs(args: string[]) {
  const flags = parseFlags(args);
  for (const k of flags.keys())
    if (!['threads', 'only', 'quick', 'json', 'seed', 'retries', 'help'].includes(k)) throw new RangeError(`unknown option --${k}\n${usage}`);
  const threads = (flags.get('threads') ?? '1,2').split(',').map((s) => Number(s.trim()));
  for (const t of threads) if (!Number.isInteger(t) || t < 1) throw new RangeError(`Expected integers >= 1 for --threads but received ${flags.get('threads')}`);
  const ids = WORKLOADS.map((w) => w.id);
  const only = flags.has('only') ? flags.get('only')!.split(',').map((s) => s.trim().toUpperCase()) : ids;
  for (const id of only) if (!ids.includes(id)) throw new RangeError(`Expected workloads among ${ids.join(',')} for --only but received ${flags.get('only')}`);
  const seed = flags.has('seed') ? Number(flags.get('seed')) >>> 0 : 1234;
  const json = flags.get('json');
  if (json === 'true') throw new RangeError('Expected a file name for --json');
  const quick = flags.has('quick');
  const retries = flags.has('retries') ? Number(flags.get('retries')) : quick ? 0 : 3;
  if (!Number.isInteger(retries) || retries < 0) throw new RangeError(`Expected an integer >= 0 for --retries but received ${flags.get('retries')}`);
  return { threads: [...new Set(threads)], only, quick, json, seed, retries, help: flags.has('help') };
}

const fmt = (x: number, digits = 1) => (Number.isFinite(x) ? x.toFixed(digits) : '—');
const pad = (s: string, n: number) => (s.length >= n ? s : s + ' '.repeat(n - s.length));
const lpad = (s: string, n: number) => (s.length >= n ? s : ' '.repeat(n - s.length) + s);

function cpuModel(): string {
  return os.cpus()[0]?.model?.trim() || 'unknown CPU';
}

function loadavg(): number[] {
  return os.loadavg().map((x) => Math.round(x * 100) / 100);
}

/** `flashattn bench`: prints progress and the table through `log`; rejects if any output is wrong. */
export async function runBench(args: string[], log: (line: string) => void): Promise<void> {
  await bench(args, log);
}

/** The benchmark; null for --help. Rejects (after printing everything) if any output is wrong. */
export async function bench(args: string[], log: (line: string) => void): Promise<BenchReport | null> {
  const opt = parseArgs(args);
  if (opt.help) { log(usage); return null; }
  const policy = opt.quick ? QUICK : FULL;
  const workloads = WORKLOADS.filter((w) => opt.only.includes(w.id));
  const report: BenchReport = {
    date: new Date().toISOString(), node: process.version, cpu: cpuModel(), cores: os.availableParallelism?.() ?? os.cpus().length,
    loadavgStart: loadavg(), loadavgEnd: [], othersCores: 0, args, quick: opt.quick, seed: opt.seed, versions: {}, unavailable: {},
    workloads: [], results: [], screening: [], failures: [],
  };
  log(`flashattn CPU benchmark — ${report.date}`);
  log(`machine: ${report.cpu}, ${report.cores} cores; Node ${report.node}; threads ${opt.threads.join(',')}; ${opt.quick ? 'quick' : 'full'} timing; float32; seed ${opt.seed}`);
  const la = report.loadavgStart;
  log(`load average (1, 5, 15 min): ${la.join(', ')}${la[0]! > 0.5 ? '  ⚠ the machine is busy: multi-thread numbers are not trustworthy' : ''}`);
  log('timing: median (min) of timed runs after warm-up; GFLOP/s = FlashAttention FLOPs (4·kept pairs·heads·d) / median');

  // ---- implementations, one per thread count, created lazily and kept for every workload
  const engines = new Map<number, Engine | string>();
  const ortNode = new Map<number, PeerRunner | string>();
  const ortWeb = new Map<number, PeerRunner | string>();
  const getEngine = async (t: number) => {
    if (!engines.has(t)) {
      try {
        const e = await createEngine({ backend: 'wasm', threads: t });
        engines.set(t, e);
        report.versions.flashattn = `wasm engine (${Object.entries(e.info).filter(([k]) => k !== 'threads').map(([k, v]) => `${k} ${v}`).join(', ')})`;
        if (e.threads !== t) log(`  note: the wasm engine asked for ${t} threads runs ${e.threads}`);
      } catch (err) {
        engines.set(t, `not available: ${(err as Error).message}`);
      }
    }
    return engines.get(t)!;
  };
  const release = async (t: number) => {
    for (const m of [engines, ortNode, ortWeb]) {
      const x = m.get(t);
      if (x !== undefined && typeof x !== 'string') { m.set(t, 'released'); await x.dispose().catch(() => {}); }
    }
  };
  const getPeer = async (m: Map<number, PeerRunner | string>, t: number, load: (t: number) => Promise<PeerRunner | string>) => {
    if (!m.has(t)) m.set(t, await load(t));
    return m.get(t)!;
  };

  const record = (r: BenchResult, d: WorkloadData, line: string, into = report.results, silent = false) => {
    into.push(r);
    if (!r.ok) report.failures.push(`${r.workload} ${r.impl} ${r.threads}t${r.op ? ` [${r.op}]` : ''}: max error ${r.maxErr.toExponential(2)}`);
    if (silent) return;
    const bw = d.w.reportBandwidth ? `  ${lpad(fmt(r.gbps!, 2), 6)} GB/s` : '';
    log(`${line}${lpad(fmt(r.medianMs, 2), 9)} ms (min ${fmt(r.minMs, 2)}, ${r.runs} runs) ${lpad(fmt(r.gflops, 2), 7)} GFLOP/s${bw}  ${r.ok ? '✓' : '✗ MISMATCH'} err ${r.maxErr.toExponential(1)}${r.op ? `  [${r.op}]` : ''}${r.othersCores > BUSY_CORES ? `  ⚠ disturbed: other processes used ${fmt(r.othersCores, 2)} cores` : ''}`);
  };
  const result = (d: WorkloadData, impl: ImplName, t: number, timing: Timing, check: Check, others: number, op?: string): BenchResult => ({
    workload: d.w.id, impl, threads: t, op, medianMs: timing.medianMs, minMs: timing.minMs, runs: timing.times.length,
    gflops: d.flops / timing.medianMs / 1e6, gbps: d.w.reportBandwidth ? d.kvBytes / timing.medianMs / 1e6 : undefined,
    maxErr: check.maxErr, ok: check.ok, othersCores: others,
  });
  const unavailable = (impl: string, t: number, why: string) => {
    const key = `${impl}`;
    if (report.unavailable[key] === undefined) { report.unavailable[key] = why; log(`  ${impl} (${t}t): ${why}`); }
  };

  /** Measures again, after waiting for a quiet machine, while other processes disturbed the measurement. */
  const steady = async (produce: () => Promise<BenchResult>, tag: string): Promise<BenchResult> => {
    let best = await produce(), last = best;
    for (let i = 0; i < opt.retries && best.othersCores > BUSY_CORES; i++) {
      log(`${tag}… disturbed (other processes used ${fmt(last.othersCores, 2)} cores): waiting for a quiet machine, then measuring again`);
      await waitQuiet(180_000);
      last = await produce();
      if (last.othersCores < best.othersCores) best = last;
    }
    return best;
  };

  const othersRun = othersCores();
  // ---- inputs and float64 references, once per workload
  const prepared = workloads.map((w) => {
    const d = makeWorkloadData(w, opt.seed);
    const peersPerSequence = w.seqlensQ.length > 1;
    report.workloads.push({ id: w.id, title: w.title, gflop: d.flops / 1e9, kvMB: d.kvBytes / 1e6, peersPerSequence });
    const t0 = performance.now();
    const ref = referenceProblem(d.problem).out;
    log(`${w.id}: ${w.title} — ${fmt(d.flops / 1e9, 3)} GFLOP per call${w.reportBandwidth ? `, K+V ${fmt(d.kvBytes / 1e6, 1)} MB` : ''}${peersPerSequence ? ' (peers: one call per sequence, no padding)' : ''}; float64 reference ${fmt((performance.now() - t0) / 1000, 1)} s`);
    return { d, ref, tensors: engineInputs(d) };
  });

  // ---- one thread count at a time (only its thread pools alive), every implementation per workload
  try {
    for (const t of opt.threads) {
      log('');
      log(`-- ${t} thread${t > 1 ? 's' : ''}`);
      for (const { d, ref, tensors } of prepared) {
        const w = d.w;
        const tag = `  ${w.id} ${t}t `;
        // flashattn
        const e = await getEngine(t);
        if (typeof e === 'string') unavailable('flashattn', t, e);
        else {
          try {
            const call = () => (tensors.varlen
              ? e.attentionVarlen(tensors.q, tensors.k, tensors.v, { cuSeqlensQ: d.cuSeqlensQ, cuSeqlensK: d.cuSeqlensK, causal: w.causal })
              : e.attention(tensors.q, tensors.k, tensors.v, { causal: w.causal }));
            const how = tensors.varlen ? 'attentionVarlen, one packed call' : undefined;
            const r = await steady(async () => {
              const others = othersCores();
              const { timing, result: out } = await measure(call, policy);
              return result(d, 'flashattn', t, timing, checkAgainst(out.out.data as Float32Array, ref), others(), how);
            }, `${tag}${pad('flashattn', 17)}`);
            record(r, d, `${tag}${pad('flashattn', 17)}`);
          } catch (err) {
            report.failures.push(`${w.id} flashattn ${t}t: ${(err as Error).message}`);
            log(`${tag}${pad('flashattn', 17)} ✗ ERROR ${(err as Error).message}`);
          }
          // flashattn with K and V resident in the engine (uploaded once, as a KV cache is), q per call
          if (w.residentKV) {
            const name = 'flashattn (resident K/V)';
            const label = `${tag}${pad('  resident K/V', 17)}`;
            let k: DeviceTensor | null = null, v: DeviceTensor | null = null;
            try {
              const kk = k = await e.upload(tensors.k), vv = v = await e.upload(tensors.v);
              const call = () => (tensors.varlen
                ? e.attentionVarlen(tensors.q, kk, vv, { cuSeqlensQ: d.cuSeqlensQ, cuSeqlensK: d.cuSeqlensK, causal: w.causal })
                : e.attention(tensors.q, kk, vv, { causal: w.causal }));
              const r = await steady(async () => {
                const others = othersCores();
                const { timing, result: out } = await measure(call, policy);
                return result(d, name, t, timing, checkAgainst((out.out as Tensor).data as Float32Array, ref), others(), 'K, V uploaded once; q per call');
              }, label);
              record(r, d, label);
            } catch (err) {
              report.failures.push(`${w.id} ${name} ${t}t: ${(err as Error).message}`);
              log(`${label} ✗ ERROR ${(err as Error).message}`);
            } finally {
              k?.dispose();
              v?.dispose();
            }
          }
        }
        // onnxruntime peers
        for (const [impl, m, load] of [
          ['onnxruntime-node', ortNode, loadOrtNode], ['onnxruntime-web', ortWeb, loadOrtWeb],
        ] as const) {
          const peer = await getPeer(m, t, load);
          if (typeof peer === 'string') { unavailable(impl, t, peer); continue; }
          report.versions[impl] = peer.version;
          await runPeer(peer, impl, t, d, ref, opt.quick ? null : policy, (produce) => steady(produce, `${tag}${pad(impl, 17)}`), (r, line, screening, silent) =>
            record(r, d, `${tag}${pad(impl, 17)}${line}`, screening ? report.screening : report.results, silent),
          (msg) => log(`${tag}${pad(impl, 17)}${msg}`));
        }
        // naive JS: one thread only, measured once (with the first thread count)
        if (t === opt.threads[0]) {
          const r = await steady(async () => {
            const others = othersCores();
            const { timing, result: out } = await measure(() => naiveAttention(d), opt.quick ? NAIVE_QUICK : NAIVE_FULL);
            return result(d, 'naive JS', 1, timing, checkAgainst(out, ref), others());
          }, `  ${w.id} 1t ${pad('naive JS', 17)}`);
          record(r, d, `  ${w.id} 1t ${pad('naive JS', 17)}`);
        }
      }
      await release(t);
    }
  } finally {
    for (const t of opt.threads) await release(t);
  }

  report.loadavgEnd = loadavg();
  report.othersCores = othersRun();
  log('');
  log(`load average at the end: ${report.loadavgEnd.join(', ')} (this run included); other processes used ${fmt(report.othersCores, 2)} cores on average during the run`);
  for (const line of table(report, opt.threads)) log(line);
  if (opt.json) {
    writeFileSync(opt.json, JSON.stringify(report, null, 2) + '\n');
    log(`wrote ${opt.json}`);
  }
  if (report.failures.length) throw new Error(`benchmark verification failed:\n  ${report.failures.join('\n  ')}`);
  log('verification: every output matched the float64 reference (max |err| / max(1, |ref|) <= 1e-4)');
  return report;
}

/** The engine's inputs: fixed-length `[1, S, heads, D]` for one sequence, packed otherwise. */
function engineInputs(d: WorkloadData): { q: Tensor; k: Tensor; v: Tensor; varlen: boolean } {
  const { numHeads: H, numKvHeads: Hk, headDim: D, headDimV: Dv } = d.w;
  const varlen = d.w.seqlensQ.length > 1;
  const lead = (n: number) => (varlen ? [n] : [1, n]);
  return {
    q: { data: d.q, shape: [...lead(d.totalQ), H, D], dtype: 'float32' },
    k: { data: d.k, shape: [...lead(d.totalK), Hk, D], dtype: 'float32' },
    v: { data: d.v, shape: [...lead(d.totalK), Hk, Dv], dtype: 'float32' },
    varlen,
  };
}

/**
 * Every candidate operator is run briefly and verified (screening); the fastest (and a runner-up
 * within 10%) is then timed with the full policy. With `full` null (quick), screening is the measurement.
 */
async function runPeer(
  peer: PeerRunner, impl: ImplName, t: number, d: WorkloadData, ref: Float64Array, full: TimingPolicy | null,
  steady: (produce: () => Promise<BenchResult>) => Promise<BenchResult>,
  record: (r: BenchResult, line: string, screening: boolean, silent?: boolean) => void, note: (msg: string) => void,
): Promise<void> {
  const screened: { plan: OrtPlan; r: BenchResult }[] = [];
  const timed = (plan: OrtPlan, policy: TimingPolicy): Promise<BenchResult> => steady(async () => {
    const others = othersCores();
    const run = await peer.run(plan, policy);
    return toResult(plan, run, others());
  });
  const toResult = (plan: OrtPlan, run: PeerRun, others: number): BenchResult => {
    const check = checkAgainst(run.out, ref);
    return {
      workload: d.w.id, impl, threads: t, op: plan.op, medianMs: run.timing.medianMs, minMs: run.timing.minMs,
      runs: run.timing.times.length, gflops: d.flops / run.timing.medianMs / 1e6,
      gbps: d.w.reportBandwidth ? d.kvBytes / run.timing.medianMs / 1e6 : undefined, maxErr: check.maxErr, ok: check.ok, othersCores: others,
    };
  };
  for (const plan of ortPlans(d)) {
    try {
      const r = await timed(plan, full ? SCREEN : QUICK);
      screened.push({ plan, r });
      record(r, ' screen ', true);
    } catch (err) {
      note(` (${plan.op}: not run — ${(err as Error).message.split('\n')[0]})`);
    }
  }
  const good = screened.filter((s) => s.r.ok).sort((a, b) => a.r.minMs - b.r.minMs);
  if (!good.length) { note(' ✗ no candidate operator ran correctly'); return; }
  if (!full) {
    // quick: the screening runs are the measurement; the fastest is the result
    record(good[0]!.r, '', false);
    return;
  }
  // full: every candidate whose fastest screening run is within 25% of the best one is timed fully;
  // the best median wins
  const finalists = good.filter((s) => s.r.minMs <= good[0]!.r.minMs * 1.25).slice(0, 3);
  let best: BenchResult | null = null;
  for (const f of finalists) {
    const r = await timed(f.plan, full);
    if (!r.ok) { record(r, '', false); return; }
    if (finalists.length > 1) record(r, ' final  ', true);
    if (!best || r.medianMs < best.medianMs) best = r;
  }
  record(best!, '', false);
}

/** The side-by-side table (markdown), one row per workload and thread count. */
export function table(report: BenchReport, threads: number[]): string[] {
  const get = (w: string, impl: ImplName, t: number) => report.results.find((r) => r.workload === w && r.impl === impl && r.threads === t && r.ok);
  const cell = (r: BenchResult | undefined, bw: boolean) =>
    (r ? `${fmt(r.gflops, 1)}${bw ? ` (${fmt(r.gbps!, 1)} GB/s)` : ''}${r.othersCores > BUSY_CORES ? ' ⚠' : ''}` : '—');
  const ratio = (a: BenchResult | undefined, b: BenchResult | undefined) => (a && b ? `${fmt(a.gflops / b.gflops, 2)}x` : '—');
  const lines = [
    '',
    'GFLOP/s (median; C also GB/s of K and V read). Ratios are flashattn / peer at the same thread count (naive JS: 1 thread).',
    '',
    '| workload | threads | flashattn | onnxruntime-node | onnxruntime-web | naive JS (1 thread) | vs ort-node | vs ort-web | vs naive |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const w of report.workloads) {
    const bw = w.id === 'C';
    const naive = get(w.id, 'naive JS', 1);
    for (const t of threads) {
      const fa = get(w.id, 'flashattn', t), on = get(w.id, 'onnxruntime-node', t), ow = get(w.id, 'onnxruntime-web', t);
      lines.push(`| ${w.id} | ${t} | ${cell(fa, bw)} | ${cell(on, bw)} | ${cell(ow, bw)} | ${cell(naive, bw)} | ${ratio(fa, on)} | ${ratio(fa, ow)} | ${ratio(fa, naive)} |`);
    }
    // flashattn with K and V resident (uploaded once), against the same peer numbers
    for (const t of threads) {
      const fr = get(w.id, 'flashattn (resident K/V)', t);
      if (!fr) continue;
      const on = get(w.id, 'onnxruntime-node', t), ow = get(w.id, 'onnxruntime-web', t);
      lines.push(`| ${w.id}, flashattn (resident K/V) | ${t} | ${cell(fr, bw)} | ${cell(on, bw)} | ${cell(ow, bw)} | ${cell(naive, bw)} | ${ratio(fr, on)} | ${ratio(fr, ow)} | ${ratio(fr, naive)} |`);
    }
  }
  lines.push('', 'Operators the onnxruntime numbers come from (the fastest correct candidate):', '');
  for (const w of report.workloads) for (const impl of ['onnxruntime-node', 'onnxruntime-web'] as const) {
    const ops = threads.map((t) => get(w.id, impl, t)).filter((r): r is BenchResult => !!r).map((r) => `${r.threads}t: ${r.op}`);
    if (ops.length) lines.push(`- ${w.id} ${impl}: ${ops.join('; ')}`);
  }
  if (report.results.some((r) => r.othersCores > BUSY_CORES))
    lines.push('', `⚠ measured while other processes used more than ${BUSY_CORES} of a core on average: not trustworthy.`);
  const versions = Object.entries(report.versions).map(([k, v]) => `${k} ${v}`);
  if (versions.length) lines.push('', `versions: ${versions.join('; ')}`);
  const missing = Object.entries(report.unavailable);
  if (missing.length) lines.push('', ...missing.map(([k, v]) => `- ${k}: ${v}`));
  return lines;
}
