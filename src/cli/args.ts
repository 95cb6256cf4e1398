/**
 * The CLI's flag parser. Each command declares its flags (which take a value, and how that value is
 * read); anything else is a usage error: one line, exit code 2. `--name value` and `--name=value`;
 * a flag without a value is a switch. `--help` / `-h` is declared on every command.
 */

/** A usage mistake (unknown command or flag, missing or bad value): one line on stderr, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

export interface FlagDef<T = unknown> {
  /** The value's placeholder in the usage (`N`, `FILE`); absent for a switch (no value). */
  value?: string;
  help: string;
  /** Reads the text after the flag; throws a RangeError whose message says what was expected. */
  parse: (text: string) => T;
}

export type Flags = Record<string, FlagDef>;
/** The parsed values: a switch given is `true`, a value flag its parsed value, an absent flag undefined. */
export type Values<F extends Flags> = { [K in keyof F]?: F[K] extends FlagDef<infer T> ? T : never };

export interface CommandSpec<F extends Flags = Flags> {
  name: string;
  /** How it is invoked, in messages and the usage; default `flashattn <name>`. */
  prog?: string;
  /** One line for `flashattn --help`. */
  summary: string;
  /** More lines for `flashattn <name> --help`, after the summary. */
  details?: string;
  flags: F;
}

// ---------------------------------------------------------------- flag kinds

const expected = (what: string, text: string) => new RangeError(`expects ${what} but received '${text}'`);

export const flag = {
  /** A switch: `--quick`. */
  bool(help: string): FlagDef<true> {
    return { help, parse: () => true };
  },
  text(value: string, help: string): FlagDef<string> {
    return {
      value,
      help,
      parse: (s) => {
        if (s === '') throw expected('a non-empty value', s);
        return s;
      },
    };
  },
  int(value: string, help: string, min: number, max = Number.MAX_SAFE_INTEGER): FlagDef<number> {
    return { value, help, parse: (s) => readInt(s, min, max, `an integer ${range(min, max)}`) };
  },
  choice<C extends string>(choices: readonly C[], help: string): FlagDef<C> {
    return {
      value: choices.join('|'),
      help,
      parse: (s) => {
        if (!(choices as readonly string[]).includes(s)) throw expected(`one of ${choices.join(', ')}`, s);
        return s as C;
      },
    };
  },
  /** Comma-separated integers, duplicates dropped: `--threads 1,2`. */
  intList(value: string, help: string, min: number, max = Number.MAX_SAFE_INTEGER): FlagDef<number[]> {
    return {
      value,
      help,
      parse: (s) => [
        ...new Set(
          s.split(',').map((x) => readInt(x.trim(), min, max, `comma-separated integers ${range(min, max)}`, s)),
        ),
      ],
    };
  },
  /** Comma-separated choices (case-insensitive, given in upper case): `--only A,C`. */
  choiceList(value: string, choices: readonly string[], help: string): FlagDef<string[]> {
    return {
      value,
      help,
      parse: (s) => [
        ...new Set(
          s.split(',').map((x) => {
            const c = x.trim().toUpperCase();
            if (!choices.includes(c)) throw expected(`a comma-separated list among ${choices.join(',')}`, s);
            return c;
          }),
        ),
      ],
    };
  },
};

function range(min: number, max: number): string {
  return max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`;
}

function readInt(s: string, min: number, max: number, what: string, whole = s): number {
  if (!/^[+-]?\d+$/.test(s)) throw expected(what, whole);
  const n = Number(s);
  if (!Number.isSafeInteger(n) || n < min || n > max) throw expected(what, whole);
  return n;
}

// ---------------------------------------------------------------- parsing

const HELP: FlagDef<true> = flag.bool('prints this usage and exits');

/**
 * Parses `args` against the command's flags. Returns null when `--help` / `-h` was given (the caller
 * prints the usage and runs nothing). Throws a UsageError (one line naming the flag) otherwise.
 */
export function parseCommand<F extends Flags>(spec: CommandSpec<F>, args: readonly string[]): Values<F> | null {
  const who = spec.prog ?? `flashattn ${spec.name}`;
  const values: Record<string, unknown> = {};
  let help = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '-h' || a === '--help') {
      help = true;
      continue;
    }
    if (!a.startsWith('--') || a === '--') {
      throw new UsageError(
        `${who}: unexpected argument '${a}' (${a.startsWith('-') ? 'flags are spelt --name' : 'it takes no positional argument'}; ${who} --help lists the flags)`,
      );
    }
    const eq = a.indexOf('=');
    const name = eq > 0 ? a.slice(2, eq) : a.slice(2);
    const def = Object.hasOwn(spec.flags, name) ? spec.flags[name]! : undefined;
    if (!def) throw new UsageError(`${who}: unknown flag --${name} (${who} --help lists the flags)`);
    let text: string;
    if (def.value === undefined) {
      if (eq > 0) throw new UsageError(`${who}: --${name} takes no value (received '${a.slice(eq + 1)}')`);
      text = '';
    } else if (eq > 0) {
      text = a.slice(eq + 1);
    } else {
      const next = args[i + 1];
      if (next === undefined || next.startsWith('--'))
        throw new UsageError(`${who}: --${name} needs a value (${def.value})`);
      text = next;
      i++;
    }
    try {
      values[name] = def.parse(text);
    } catch (e) {
      throw new UsageError(`${who}: --${name} ${(e as Error).message}`);
    }
  }
  return help ? null : (values as Values<F>);
}

/** `flashattn <name> --help`: the summary, details and every flag. */
export function commandUsage(spec: CommandSpec): string {
  const rows = Object.entries({ ...spec.flags, help: HELP }).map(
    ([name, d]) => [`--${name}${name === 'help' ? ', -h' : ''}${d.value ? ` ${d.value}` : ''}`, d.help] as const,
  );
  const width = Math.max(...rows.map(([l]) => l.length)) + 2;
  return [
    `usage: ${spec.prog ?? `flashattn ${spec.name}`}${Object.keys(spec.flags).length ? ' [flags]' : ''}`,
    `  ${spec.summary}`,
    ...(spec.details ? spec.details.split('\n').map((l) => `  ${l}`) : []),
    '',
    'flags:',
    ...rows.map(([l, h]) => `  ${l.padEnd(width)}${h.replace(/\n/g, `\n  ${' '.repeat(width)}`)}`),
  ].join('\n');
}

/**
 * The loose parser of the repository's scripts (bench/browser/run.mjs, scripts/*.mjs): `--name value`,
 * `--name=value` and bare `--flag` ('true'), nothing rejected. The CLI itself uses parseCommand.
 */
export function parseFlags(args: string[]): Map<string, string> {
  const flags = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith('--')) continue;
    const eq = a.indexOf('=');
    if (eq > 0) flags.set(a.slice(2, eq), a.slice(eq + 1));
    else if (i + 1 < args.length && !args[i + 1]!.startsWith('--')) flags.set(a.slice(2), args[++i]!);
    else flags.set(a.slice(2), 'true');
  }
  return flags;
}
