/**
 * The words of every rejection: "Expected <what> for <name> but received <actual>", a TypeError for a
 * wrong type and a RangeError for a wrong value, so that every engine rejects bad input alike.
 */

/** A "received" value already in words (printed without quotes). */
export class Words {
  constructor(readonly text: string) {}
}
export const words = (t: string) => new Words(t);

export function show(x: unknown): string {
  if (x instanceof Words) return x.text;
  if (x === null) return 'null';
  if (x === undefined) return 'undefined';
  if (typeof x === 'bigint') return `${x}n`;
  if (typeof x === 'symbol' || typeof x === 'function') return `a ${typeof x}`;
  if (Array.isArray(x)) return x.length <= 8 ? `[${x.map(show).join(', ')}]` : `an array of length ${x.length}`;
  if (ArrayBuffer.isView(x)) return `${x.constructor.name}(${(x as unknown as ArrayLike<number>).length})`;
  if (typeof x === 'string') return JSON.stringify(x);
  if (typeof x === 'object') {
    const name = (x as object).constructor?.name;
    return name && name !== 'Object' ? `a ${name}` : 'an object';
  }
  return String(x);
}

export const typeErr = (what: string, name: string, got: unknown) =>
  new TypeError(`Expected ${what} for ${name} but received ${show(got)}`);
export const rangeErr = (what: string, name: string, got: unknown) =>
  new RangeError(`Expected ${what} for ${name} but received ${show(got)}`);

/**
 * Reads `obj[key]` once; a getter that throws (or a Proxy trap) becomes a TypeError naming the
 * argument, so no user code can make a check throw something else.
 */
export function readKey(obj: object, key: string, name: string): unknown {
  try {
    return (obj as Record<string, unknown>)[key];
  } catch (e) {
    throw new TypeError(
      `Expected a readable value for ${name} but received a property that threw ${e instanceof Error ? `${e.name}: ${e.message}` : show(e)}`,
    );
  }
}

/** A number (TypeError otherwise) that is an integer from `min` to `max` (RangeError otherwise). */
export function intIn(
  x: unknown,
  name: string,
  min: number,
  max: number,
  what = `an integer from ${min} to ${max}`,
): number {
  if (typeof x !== 'number') throw typeErr(what, name, x);
  if (!Number.isInteger(x) || x < min || x > max) throw rangeErr(what, name, x);
  return x;
}

/** The nearest of `known` to `key` by edit distance, when it is close enough to be a typo. */
export function nearest(key: string, known: readonly string[]): string | null {
  let best: string | null = null,
    bestD = Infinity;
  for (const k of known) {
    const d = editDistance(key.toLowerCase(), k.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  return bestD <= Math.max(2, Math.floor(key.length / 3)) ? best : null;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++)
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}

/** Rejects keys of an options object that are not among `known` (a misspelt option must not be ignored). */
export function checkKeys(
  o: object,
  known: readonly string[],
  name: string,
  hint?: (key: string) => string | null,
): void {
  for (const key of Object.keys(o)) {
    if (known.includes(key)) continue;
    const near =
      hint?.(key) ?? (nearest(key, known) ? `did you mean '${nearest(key, known)}'?` : `known: ${known.join(', ')}`);
    throw new TypeError(`Expected a known option for ${name}.${key} but received an unknown key; ${near}`);
  }
}
