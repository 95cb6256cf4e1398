/**
 * One benchmark run (BenchRun): the report, the header, the inputs and their float64 references,
 * the engines per thread count, timing with retries on a disturbed machine, and the result lines.
 * `flashattn bench` (../bench.ts) measures the engine with it; bench/cpu adds the peers to the same run.
 */
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { createEngine } from '../../node.js';
import { referenceProblem } from '../../reference.js';
import type { DeviceTensor, Engine, Tensor } from '../../types.js';
import { BUSY_CORES, othersCores, waitQuiet } from './interference.js';
import { engineMeasurements, measureKvCache } from './kvcache.js';
import type { Timing, TimingPolicy } from './timing.js';
import { FULL, QUICK, measure } from './timing.js';
import { checkAgainst } from './verify.js';
import type { Check } from './verify.js';
import type { WorkloadData } from './workloads.js';
import { WORKLOADS, makeWorkloadData } from './workloads.js';

export interface BenchOptions {
  threads: number[];
  only: string[];
  quick: boolean;
  json?: string;
  seed: number;
  retries: number;
}

/** The options from the parsed flags, with their defaults. */
export interface BenchResult {
  workload: string;
  /** 'flashattn', 'flashattn (resident K/V)', 'flashattn (KV cache, bs 16)' (./kvcache.ts), or a peer's name (bench/cpu). */
  impl: string;
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
  failures: string[];
}

/** A workload's inputs as the engine takes them. */
export interface EngineInputs {
  q: Tensor;
  k: Tensor;
  v: Tensor;
  varlen: boolean;
}

export interface Prepared {
  d: WorkloadData;
  ref: Float64Array;
  tensors: EngineInputs;
}

export const fmt = (x: number, digits = 1) => (Number.isFinite(x) ? x.toFixed(digits) : '—');
export const pad = (s: string, n: number) => (s.length >= n ? s : s + ' '.repeat(n - s.length));
export const lpad = (s: string, n: number) => (s.length >= n ? s : ' '.repeat(n - s.length) + s);

function loadavg(): number[] {
  return os.loadavg().map((x) => Math.round(x * 100) / 100);
}

function seconds(s: number): string {
  return s < 90 ? `${Math.max(1, Math.round(s))} s` : `${Math.round(s / 60)} min`;
}

/** "n of N" with an estimate of the time left (elapsed time per measurement so far × the rest). */
export class Progress {
  private done = 0;
  private t0 = performance.now();
  constructor(readonly total: number) {}

  /** Restarts the clock (when the measurements begin). */
  start(): void {
    this.t0 = performance.now();
  }

  /** Counts one measurement; returns e.g. "3 of 10, about 12 s left". */
  step(): string {
    this.done = Math.min(this.total, this.done + 1);
    const elapsed = (performance.now() - this.t0) / 1000;
    if (this.done >= this.total) return `${this.done} of ${this.total}, ${seconds(elapsed)} in all`;
    return `${this.done} of ${this.total}, about ${seconds((elapsed / this.done) * (this.total - this.done))} left`;
  }
}

/**
 * One benchmark run: the report, the header, the inputs and references, the engines per thread count,
 * the retry logic and the result lines. `flashattn bench` measures the engine with it; bench/cpu
 * (the peers) adds onnxruntime and the naive loop to the same run.
 */
export class BenchRun {
  readonly report: BenchReport;
  readonly policy: TimingPolicy;
  readonly workloads: (typeof WORKLOADS)[number][];
  readonly progress: Progress;
  private readonly engines = new Map<number, Engine | string>();
  private readonly othersRun = othersCores();

  /**
   * `measurements`: how many result lines the run will print (the progress's N), from the workload count and
   * the engine's extra lines (resident K/V, KV cache: `engineMeasurements` - 1 per workload and thread count).
   */
  constructor(
    readonly opt: BenchOptions,
    args: string[],
    readonly log: (line: string) => void,
    measurements?: (workloads: number, extra: number) => number,
  ) {
    this.policy = opt.quick ? QUICK : FULL;
    this.workloads = WORKLOADS.filter((w) => opt.only.includes(w.id));
    this.report = {
      date: new Date().toISOString(),
      node: process.version,
      cpu: os.cpus()[0]?.model?.trim() || 'unknown CPU',
      cores: os.availableParallelism?.() ?? os.cpus().length,
      loadavgStart: loadavg(),
      loadavgEnd: [],
      othersCores: 0,
      args,
      quick: opt.quick,
      seed: opt.seed,
      versions: {},
      unavailable: {},
      workloads: [],
      results: [],
      failures: [],
    };
    const extra = this.workloads.reduce((n, w) => n + engineMeasurements(w) - 1, 0);
    const n = measurements ? measurements(this.workloads.length, extra) : this.workloads.length + extra;
    this.progress = new Progress(n);
  }

  /** The lines before any measurement. */
  header(title: string): void {
    const { report: r, opt, log } = this;
    log(`${title} — ${r.date}`);
    log(
      `machine: ${r.cpu}, ${r.cores} cores; Node ${r.node}; threads ${opt.threads.join(',')}; ${opt.quick ? 'quick' : 'full'} timing; float32; seed ${opt.seed}`,
    );
    const la = r.loadavgStart;
    log(
      `load average (1, 5, 15 min): ${la.join(', ')}${la[0]! > 0.5 ? '  ⚠ the machine is busy: multi-thread numbers are not trustworthy' : ''}`,
    );
    log(
      'timing: median (min) of timed runs after warm-up; GFLOP/s = FlashAttention FLOPs (4·kept pairs·heads·d) / median',
    );
  }

  /** Inputs and float64 references, once per workload. */
  prepare(): Prepared[] {
    const prepared = this.workloads.map((w) => {
      const d = makeWorkloadData(w, this.opt.seed);
      const peersPerSequence = w.seqlensQ.length > 1;
      this.report.workloads.push({
        id: w.id,
        title: w.title,
        gflop: d.flops / 1e9,
        kvMB: d.kvBytes / 1e6,
        peersPerSequence,
      });
      const t0 = performance.now();
      const ref = referenceProblem(d.problem).out;
      this.log(
        `${w.id}: ${w.title} — ${fmt(d.flops / 1e9, 3)} GFLOP per call${w.reportBandwidth ? `, K+V ${fmt(d.kvBytes / 1e6, 1)} MB` : ''}${peersPerSequence ? ' (peers: one call per sequence, no padding)' : ''}; float64 reference ${fmt((performance.now() - t0) / 1000, 1)} s`,
      );
      return { d, ref, tensors: engineInputs(d) };
    });
    this.progress.start();
    return prepared;
  }

  /** The wasm engine with `t` threads, created once; a reason string when it does not load. */
  async engine(t: number): Promise<Engine | string> {
    if (!this.engines.has(t)) {
      try {
        const e = await createEngine({ backend: 'wasm', threads: t });
        this.engines.set(t, e);
        this.report.versions.flashattn = `wasm engine (${Object.entries(e.info)
          .filter(([k]) => k !== 'threads')
          .map(([k, v]) => `${k} ${v}`)
          .join(', ')})`;
        if (e.threads !== t) this.log(`  note: the wasm engine asked for ${t} threads runs ${e.threads}`);
      } catch (err) {
        this.engines.set(t, `not available: ${(err as Error).message}`);
      }
    }
    return this.engines.get(t)!;
  }

  /** Disposes of the engine with `t` threads (so only one thread count's pools are alive). */
  async release(t: number): Promise<void> {
    const e = this.engines.get(t);
    if (e !== undefined && typeof e !== 'string') {
      this.engines.set(t, 'released');
      await e.dispose().catch(() => {});
    }
  }

  /** Prints a result line (with the progress unless `silent` or `screening`) and keeps the result. */
  record(
    r: BenchResult,
    d: WorkloadData,
    line: string,
    into = this.report.results,
    silent = false,
    step = into === this.report.results,
  ): void {
    into.push(r);
    if (!r.ok)
      this.report.failures.push(
        `${r.workload} ${r.impl} ${r.threads}t${r.op ? ` [${r.op}]` : ''}: max error ${r.maxErr.toExponential(2)}`,
      );
    if (silent) return;
    const bw = d.w.reportBandwidth ? `  ${lpad(fmt(r.gbps!, 2), 6)} GB/s` : '';
    this.log(
      `${line}${lpad(fmt(r.medianMs, 2), 9)} ms (min ${fmt(r.minMs, 2)}, ${r.runs} runs) ${lpad(fmt(r.gflops, 2), 7)} GFLOP/s${bw}  ${r.ok ? '✓' : '✗ MISMATCH'} err ${r.maxErr.toExponential(1)}${r.op ? `  [${r.op}]` : ''}${r.othersCores > BUSY_CORES ? `  ⚠ disturbed: other processes used ${fmt(r.othersCores, 2)} cores` : ''}${step ? `  (${this.progress.step()})` : ''}`,
    );
  }

  /** A measurement that threw: a failure, and a line with the progress. */
  error(what: string, line: string, err: unknown): void {
    this.report.failures.push(`${what}: ${(err as Error).message}`);
    this.log(`${line} ✗ ERROR ${(err as Error).message}  (${this.progress.step()})`);
  }

  /** An implementation that does not run here: said once, its measurements counted as done. */
  unavailable(impl: string, t: number, why: string, steps = 1): void {
    if (this.report.unavailable[impl] === undefined) {
      this.report.unavailable[impl] = why;
      this.log(`  ${impl} (${t}t): ${why}`);
    }
    for (let i = 0; i < steps; i++) this.progress.step();
  }

  result(
    d: WorkloadData,
    impl: string,
    t: number,
    timing: Timing,
    check: Check,
    others: number,
    op?: string,
  ): BenchResult {
    return {
      workload: d.w.id,
      impl,
      threads: t,
      op,
      medianMs: timing.medianMs,
      minMs: timing.minMs,
      runs: timing.times.length,
      gflops: d.flops / timing.medianMs / 1e6,
      gbps: d.w.reportBandwidth ? d.kvBytes / timing.medianMs / 1e6 : undefined,
      maxErr: check.maxErr,
      ok: check.ok,
      othersCores: others,
    };
  }

  /** Measures again, after waiting for a quiet machine, while other processes disturbed the measurement. */
  async steady(produce: () => Promise<BenchResult>, tag: string): Promise<BenchResult> {
    let best = await produce(),
      last = best;
    for (let i = 0; i < this.opt.retries && best.othersCores > BUSY_CORES; i++) {
      this.log(
        `${tag}… disturbed (other processes used ${fmt(last.othersCores, 2)} cores): waiting for a quiet machine, then measuring again`,
      );
      await waitQuiet(180_000);
      last = await produce();
      if (last.othersCores < best.othersCores) best = last;
    }
    return best;
  }

  /** flashattn on one workload at `t` threads: plain calls, resident K/V and a KV cache where the workload asks. */
  async measureEngine(e: Engine, p: Prepared, t: number): Promise<void> {
    await this.measureCalls(e, p, t);
    if (p.d.w.kvCache) await measureKvCache(this, e, p, t);
  }

  private async measureCalls(e: Engine, { d, ref, tensors }: Prepared, t: number): Promise<void> {
    const w = d.w;
    const tag = `  ${w.id} ${t}t `;
    const label = `${tag}${pad('flashattn', 17)}`;
    try {
      const call = () =>
        tensors.varlen
          ? e.attentionVarlen(tensors.q, tensors.k, tensors.v, {
              cuSeqlensQ: d.cuSeqlensQ,
              cuSeqlensK: d.cuSeqlensK,
              causal: w.causal,
            })
          : e.attention(tensors.q, tensors.k, tensors.v, { causal: w.causal });
      const how = tensors.varlen ? 'attentionVarlen, one packed call' : undefined;
      const r = await this.steady(async () => {
        const others = othersCores();
        const { timing, result: out } = await measure(call, this.policy);
        return this.result(d, 'flashattn', t, timing, checkAgainst(out.out.data as Float32Array, ref), others(), how);
      }, label);
      this.record(r, d, label);
    } catch (err) {
      this.error(`${w.id} flashattn ${t}t`, label, err);
    }
    // K and V resident in the engine (uploaded once, as a KV cache is), q per call
    if (!w.residentKV) return;
    const name = 'flashattn (resident K/V)';
    const rlabel = `${tag}${pad('  resident K/V', 17)}`;
    let k: DeviceTensor | null = null,
      v: DeviceTensor | null = null;
    try {
      const kk = (k = await e.upload(tensors.k)),
        vv = (v = await e.upload(tensors.v));
      const call = () =>
        tensors.varlen
          ? e.attentionVarlen(tensors.q, kk, vv, {
              cuSeqlensQ: d.cuSeqlensQ,
              cuSeqlensK: d.cuSeqlensK,
              causal: w.causal,
            })
          : e.attention(tensors.q, kk, vv, { causal: w.causal });
      const r = await this.steady(async () => {
        const others = othersCores();
        const { timing, result: out } = await measure(call, this.policy);
        return this.result(
          d,
          name,
          t,
          timing,
          checkAgainst((out.out as Tensor).data as Float32Array, ref),
          others(),
          'K, V uploaded once; q per call',
        );
      }, rlabel);
      this.record(r, d, rlabel);
    } catch (err) {
      this.error(`${w.id} ${name} ${t}t`, rlabel, err);
    } finally {
      k?.dispose();
      v?.dispose();
    }
  }

  /** After the measurements: the load, the table, the JSON; throws if any output was wrong. */
  finish(table: string[]): void {
    const { report, log } = this;
    report.loadavgEnd = loadavg();
    report.othersCores = this.othersRun();
    log('');
    log(
      `load average at the end: ${report.loadavgEnd.join(', ')} (this run included); other processes used ${fmt(report.othersCores, 2)} cores on average during the run`,
    );
    for (const line of table) log(line);
    if (this.opt.json) {
      writeFileSync(this.opt.json, JSON.stringify(report, null, 2) + '\n');
      log(`wrote ${this.opt.json}`);
    }
    if (report.failures.length) throw new Error(`benchmark verification failed: ${report.failures.join('; ')}`);
    log('verification: every output matched the float64 reference (max |err| / max(1, |ref|) <= 1e-4)');
  }
}

/** The engine's inputs: fixed-length `[1, S, heads, D]` for one sequence, packed otherwise. */
export function engineInputs(d: WorkloadData): EngineInputs {
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

/** The lines under a results table: disturbed measurements, versions, what did not run and why. */
export function tableFooter(report: BenchReport): string[] {
  const lines: string[] = [];
  if (report.results.some((r) => r.othersCores > BUSY_CORES))
    lines.push(
      '',
      `⚠ measured while other processes used more than ${BUSY_CORES} of a core on average: not trustworthy.`,
    );
  const versions = Object.entries(report.versions).map(([k, v]) => `${k} ${v}`);
  if (versions.length) lines.push('', `versions: ${versions.join('; ')}`);
  const missing = Object.entries(report.unavailable);
  if (missing.length) lines.push('', ...missing.map(([k, v]) => `- ${k}: ${v}`));
  return lines;
}
