#!/usr/bin/env node
/**
 * The `flashattn` command: demo (npm start; also what `flashattn` alone runs), doctor, bench,
 * serve-demo (npm run demo:web), build-cuda.
 *
 * Exit codes: 0 done, 1 a runtime error (one line `flashattn: <message>`; --debug prints the stack)
 * or a failed check, 2 a usage error (unknown command or flag, a missing or bad value: one line).
 */
import { readFileSync } from 'node:fs';
import { type CommandSpec, type Flags, type Values, UsageError, commandUsage, parseCommand } from './cli/args.js';
import { benchCommand, benchOptions, runBench } from './cli/bench.js';
import { buildCudaCli, buildCudaCommand } from './cli/build-cuda.js';
import { demo, demoCommand } from './cli/demo.js';
import { doctor, doctorCommand } from './cli/doctor.js';
import { serveDemo, serveDemoCommand } from './cli/serve.js';

type Log = (s: string) => void;

interface Command<F extends Flags = Flags> {
  spec: CommandSpec<F>;
  run(args: string[], log: Log, debug: boolean): Promise<number>;
}

/** Parses the command's flags; --help prints its usage instead of running it. */
function command<F extends Flags>(
  spec: CommandSpec<F>,
  run: (o: Values<F>, log: Log, debug: boolean, args: string[]) => Promise<number>,
): Command {
  return {
    spec: spec as unknown as CommandSpec,
    async run(args, log, debug) {
      const o = parseCommand(spec, args);
      if (o === null) {
        log(commandUsage(spec as unknown as CommandSpec));
        return 0;
      }
      return run(o, log, debug, args);
    },
  };
}

const COMMANDS: Record<string, Command> = {
  demo: command(demoCommand, (o, log) => demo(o, log)),
  doctor: command(doctorCommand, (o, log, debug) => doctor(o, log, debug)),
  bench: command(benchCommand, async (o, log, _debug, args) => {
    await runBench(benchOptions(o), log, args);
    return 0;
  }),
  'serve-demo': command(serveDemoCommand, (o, log) => serveDemo(o, log)),
  'build-cuda': command(buildCudaCommand, (o, log) => buildCudaCli(o, log)),
};

function usage(): string {
  const names = Object.keys(COMMANDS);
  const w = Math.max(...names.map((n) => n.length)) + 2;
  return [
    'usage: flashattn [command] [flags]       (no command: demo)',
    '',
    'commands:',
    ...names.map((n) => `  ${n.padEnd(w)}${COMMANDS[n]!.spec.summary}`),
    '',
    'global flags:',
    '  --version, -v  prints the version of flashattn',
    "  --help, -h     prints this usage; flashattn <command> --help prints the command's flags",
    "  --debug        prints a runtime error's stack, not only its message",
  ].join('\n');
}

/** The package's version: dist/cli.js (or src/cli.ts) -> ../package.json. */
function version(): string {
  return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

async function main(argv: string[], log: Log, debug: boolean): Promise<number> {
  // A global flag first; any other flag is the command's: `flashattn --threads 2` is `flashattn demo --threads 2`.
  const first = argv[0];
  if (first === '--version' || first === '-v') {
    log(version());
    return 0;
  }
  if (first === '--help' || first === '-h') {
    log(usage());
    return 0;
  }
  const rest = [...argv];
  const name = rest[0] === undefined || rest[0].startsWith('-') ? 'demo' : rest.shift()!;
  if (name === 'help') {
    const of = rest[0];
    if (of === undefined) {
      log(usage());
      return 0;
    }
    if (!Object.hasOwn(COMMANDS, of))
      throw new UsageError(`flashattn: unknown command '${of}' (commands: ${Object.keys(COMMANDS).join(', ')})`);
    log(commandUsage(COMMANDS[of]!.spec));
    return 0;
  }
  if (!Object.hasOwn(COMMANDS, name))
    throw new UsageError(
      `flashattn: unknown command '${name}' (commands: ${Object.keys(COMMANDS).join(', ')}; flashattn --help)`,
    );
  return COMMANDS[name]!.run(rest, log, debug);
}

/** A message on one line (a multi-line message's lines joined). */
function oneLine(e: unknown): string {
  // The library's own errors may already say "flashattn: "; the CLI says it once.
  const m = (e instanceof Error ? e.message : String(e)).replace(/^flashattn: /, '');
  return (
    m
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean)
      .join(' — ') || (e instanceof Error ? e.name : 'error')
  );
}

const argv = process.argv.slice(2);
const debug = argv.includes('--debug');
main(
  argv.filter((a) => a !== '--debug'),
  (s) => console.log(s),
  debug,
).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    if (e instanceof UsageError) {
      console.error(e.message);
      process.exitCode = 2;
      return;
    }
    console.error(debug && e instanceof Error && e.stack ? `flashattn: ${e.stack}` : `flashattn: ${oneLine(e)}`);
    process.exitCode = 1;
  },
);
