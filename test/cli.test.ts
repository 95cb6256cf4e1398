// The CLI from the built package (dist/), as `npm start` and the GPU machine run it.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { describe, expect, it } from 'vitest';

const cli = new URL('../dist/cli.js', import.meta.url).pathname;
const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

interface Run {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}
function cmd(args: string[], timeout = 120_000): Run {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr, ms: performance.now() - t0 };
}
const run = (...args: string[]) => {
  const r = cmd(args);
  if (r.status !== 0) throw new Error(`flashattn ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
};
const lines = (s: string) => s.split('\n').filter((l) => l !== '');

/** A usage error: exit code 2, nothing on stdout, exactly one line on stderr (returned). */
function usageError(...args: string[]): string {
  const r = cmd(args, 20_000);
  expect(r.status, `flashattn ${args.join(' ')}: ${r.stderr}`).toBe(2);
  expect(r.stdout).toBe('');
  expect(lines(r.stderr)).toHaveLength(1);
  return r.stderr.trim();
}

describe('flashattn CLI (dist/, built by npm ci)', () => {
  it('demo --decode runs a prefill and decode steps on a paged KV cache and reports tokens/s', () => {
    const out = run('demo', '--decode', '--backend', 'wasm', '--threads', '1');
    expect(out).toMatch(/prefill: 2367 tokens in [\d.]+ ms \(\d+ tokens\/s\)/);
    expect(out).toMatch(/64 decode steps: [\d.]+ ms a step, \d+ tokens\/s/);
  }, 120_000);

  it('demo draws the bottom-right picture, passes its check and times a packed batch', () => {
    const out = run('demo', '--threads', '1');
    expect(out).toContain('row 0 ███████████·········  keys 0..10');
    expect(out).toContain('row 9 ████████████████████  keys 0..19');
    expect(out).toMatch(/check against the float64 reference .* OK/);
    expect(out).toMatch(/tokens\/s, [\d.]+ GFLOP\/s/);
  });

  it('with no command runs the demo', () => {
    const out = run();
    expect(out).toMatch(/^flashattn demo on the (wasm|cuda) engine/);
    expect(out).toMatch(/check against the float64 reference .* OK/);
  });

  it('doctor lists the engines with reasons and runs the conformance cases', () => {
    const out = run('doctor', '--backend', 'wasm', '--threads', '2', '--filter', 'Lq=10 Lk=20');
    expect(out).toMatch(/wasm: loaded \(simd=/);
    expect(out).toMatch(/auto picks: (cuda|wasm)/);
    expect(out).toMatch(/doctor: [1-9]\d* passed, 0 failed/);
  });

  it('--version and -v print the package version', () => {
    for (const flag of ['--version', '-v']) {
      const r = cmd([flag], 20_000);
      expect(r.status).toBe(0);
      expect(r.stdout).toBe(`${pkg.version}\n`);
    }
  });

  it('--help and -h print the usage with every command', () => {
    for (const args of [['--help'], ['-h'], ['help']]) {
      const r = cmd(args, 20_000);
      expect(r.status).toBe(0);
      expect(r.stdout).toMatch(/^usage: flashattn/);
      for (const c of ['demo', 'doctor', 'bench', 'serve-demo', '--version', '--debug']) expect(r.stdout).toContain(c);
    }
  });

  it('--help on every command prints its usage and flags without running it', () => {
    const flagsOf: Record<string, [flags: string[], valid: string[]]> = {
      demo: [
        ['--backend', '--threads'],
        ['--threads', '1'],
      ],
      doctor: [
        ['--backend', '--threads', '--filter', '--seed'],
        ['--seed', '7'],
      ],
      bench: [
        ['--threads', '--only', '--quick', '--json', '--seed', '--retries'],
        ['--quick', '--only', 'D'],
      ],
      'serve-demo': [
        ['--port', '--isolated'],
        ['--port', '0'],
      ],
    };
    for (const [name, [flags, valid]] of Object.entries(flagsOf)) {
      for (const args of [
        [name, '--help'],
        [name, '-h'],
        ['help', name],
        [name, ...valid, '--help'],
      ]) {
        // serve-demo would never exit if it started the server: the timeout kills it (signal set)
        const r = cmd(args, 15_000);
        expect(r.signal, `flashattn ${args.join(' ')} did not exit`).toBeNull();
        expect(r.status, `flashattn ${args.join(' ')}: ${r.stderr}`).toBe(0);
        expect(r.stdout).toMatch(new RegExp(`^usage: flashattn ${name} `));
        for (const f of [...flags, '--help']) expect(r.stdout).toContain(f);
        // nothing ran
        expect(r.stdout).not.toMatch(/flashattn demo on|conformance cases \(seed|load average|demo page:/);
      }
    }
  });

  it('serve-demo --help exits promptly (the server is not started)', () => {
    const r = cmd(['serve-demo', '--help'], 10_000);
    expect(r.signal).toBeNull();
    expect(r.status).toBe(0);
    expect(r.ms).toBeLessThan(10_000);
  });

  it('an unknown command is one line, exit code 2', () => {
    expect(usageError('frobnicate')).toMatch(/^flashattn: unknown command 'frobnicate'/);
    expect(usageError('help', 'frobnicate')).toMatch(/unknown command 'frobnicate'/);
  });

  it('an unknown flag, on any command, is one line naming it, exit code 2', () => {
    for (const name of ['demo', 'doctor', 'bench', 'serve-demo'])
      expect(usageError(name, '--frob')).toBe(
        `flashattn ${name}: unknown flag --frob (flashattn ${name} --help lists the flags)`,
      );
    expect(usageError('--frob')).toMatch(/unknown flag --frob/);
    expect(usageError('demo', '-x')).toMatch(/unexpected argument '-x'/);
    expect(usageError('doctor', 'extra')).toMatch(/unexpected argument 'extra'/);
    // a flag of another command
    expect(usageError('serve-demo', '--threads', '2')).toMatch(/unknown flag --threads/);
  });

  it('a missing or bad value is one line naming the flag, exit code 2', () => {
    const cases: [string[], RegExp][] = [
      [['bench', '--threads', 'abc'], /^flashattn bench: --threads expects .*'abc'/],
      [['bench', '--threads', '1,x'], /^flashattn bench: --threads /],
      [['bench', '--threads', '0'], /^flashattn bench: --threads /],
      [['bench', '--only', 'Z'], /^flashattn bench: --only expects .*A,B,C,D,E/],
      [['bench', '--retries', '-1'], /^flashattn bench: --retries /],
      [['bench', '--json'], /^flashattn bench: --json needs a value/],
      [['bench', '--json', '--quick'], /^flashattn bench: --json needs a value/],
      [['bench', '--quick=yes'], /^flashattn bench: --quick takes no value/],
      [
        ['serve-demo', '--port', '-3'],
        /^flashattn serve-demo: --port expects an integer from 0 to 65535 but received '-3'/,
      ],
      [['serve-demo', '--port', '70000'], /^flashattn serve-demo: --port /],
      [['serve-demo', '--isolated', 'maybe'], /^flashattn serve-demo: --isolated /],
      [['serve-demo', '--port'], /^flashattn serve-demo: --port needs a value/],
      [['demo', '--threads', 'abc'], /^flashattn demo: --threads expects an integer >= 1/],
      [['demo', '--threads=1.5'], /^flashattn demo: --threads /],
      [['demo', '--backend', 'gpu'], /^flashattn demo: --backend expects one of auto, wasm, cuda/],
      [['doctor', '--seed', 'x'], /^flashattn doctor: --seed /],
      [['doctor', '--filter'], /^flashattn doctor: --filter needs a value/],
    ];
    for (const [args, re] of cases) expect(usageError(...args)).toMatch(re);
  });

  it('a runtime error is one line without a stack (exit code 1); --debug prints the stack', async () => {
    // a port already taken: listen fails (EADDRINUSE) once the flags are parsed
    const taken = createServer();
    await new Promise<void>((ok) => taken.listen(0, '127.0.0.1', ok));
    const port = String((taken.address() as AddressInfo).port);
    try {
      const plain = cmd(['serve-demo', '--port', port], 20_000);
      expect(plain.status).toBe(1);
      expect(plain.stdout).toBe('');
      expect(lines(plain.stderr)).toHaveLength(1);
      expect(plain.stderr).toMatch(/^flashattn: .*EADDRINUSE/);
      expect(plain.stderr).not.toMatch(/\n\s+at /);
      for (const args of [
        ['--debug', 'serve-demo', '--port', port],
        ['serve-demo', '--port', port, '--debug'],
      ]) {
        const debug = cmd(args, 20_000);
        expect(debug.status).toBe(1);
        expect(debug.stderr).toMatch(/^flashattn: Error: .*EADDRINUSE/);
        expect(debug.stderr).toMatch(/\n\s+at /);
      }
    } finally {
      await new Promise<void>((ok) => taken.close(() => ok()));
    }
  });
});
