/** Tiny flag parser for the CLI: `--name value`, `--name=value` and bare `--flag`. */
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

/** Engine options from `--backend` and `--threads`. */
export function engineFlags(flags: Map<string, string>) {
  const backend = flags.get('backend') as 'auto' | 'wasm' | 'cuda' | undefined;
  const threads = flags.has('threads') ? Number(flags.get('threads')) : undefined;
  return { backend, threads };
}
