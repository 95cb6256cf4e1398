// The wasm kernel's ABI is written twice, once per language: assembly/abi.ts (compiled into the
// kernel) and src/wasm/abi.ts (what the host writes). Nothing at run time would notice the two
// drifting apart (a slot moved on one side reads another slot's value), so this pins them together
// name by name, checks that the kernel sources and the host use the names and not numbers, and
// runs one item through a params block written by name. The last test needs `npm run build:wasm`.
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as host from '../src/wasm/abi.js';

const read = (rel: string) => readFileSync(new URL(`../${rel}`, import.meta.url), 'utf8');
const ABI_NAME = /\b(?:P|I|PA|DTYPE)_[A-Z0-9_]+\b/g;

/** assembly/abi.ts as (name, value): every export must be `export const NAME: i32 = VALUE;`. */
function kernelAbi(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of read('assembly/abi.ts').split('\n')) {
    if (!/^\s*export\b/.test(line)) continue;
    const m = /^export const ([A-Z][A-Z0-9_]*): i32 = (-?\d+);(?:\s*\/\/.*)?$/.exec(line);
    if (!m) throw new Error(`assembly/abi.ts: expected 'export const NAME: i32 = VALUE;' but found: ${line}`);
    if (m[1]! in out) throw new Error(`assembly/abi.ts: ${m[1]} defined twice`);
    out[m[1]!] = Number(m[2]);
  }
  return out;
}

const kernel = kernelAbi();
const hostAbi: Record<string, unknown> = { ...host };
const group = (prefix: string) => Object.entries(kernel).filter(([n]) => n.startsWith(prefix));

describe('wasm ABI', () => {
  it('assembly/abi.ts and src/wasm/abi.ts define the same names with the same values', () => {
    expect(Object.keys(kernel).length).toBeGreaterThan(40);
    for (const [name, v] of Object.entries(hostAbi)) expect(typeof v, `src/wasm/abi.ts ${name}`).toBe('number');
    expect(Object.keys(hostAbi).sort()).toEqual(Object.keys(kernel).sort());
    for (const [name, v] of Object.entries(kernel)) expect(hostAbi[name], name).toBe(v);
  });

  it('the slots of each block are distinct and inside it', () => {
    const inside = (prefix: string, size: number, all: boolean) => {
      const slots = group(prefix).map(([, v]) => v);
      expect(new Set(slots).size, `${prefix} slots distinct`).toBe(slots.length);
      for (const s of slots) expect(s >= 0 && s < size, `${prefix} slot ${s} inside ${size}`).toBe(true);
      if (all) expect(slots.length, `every ${prefix} slot named`).toBe(size);
    };
    inside('P_', kernel['PARAMS_INTS']!, false);
    inside('I_', kernel['ITEM_INTS']!, true);
    inside('PA_', kernel['PARENT_INTS']!, false);
    expect(
      group('DTYPE_')
        .map(([, v]) => v)
        .sort(),
    ).toEqual([0, 1, 2]);
    // a split item (at most SLOT_ROWS rows) is an item (at most BM rows)
    expect(kernel['SLOT_ROWS']!).toBeLessThanOrEqual(kernel['BM']!);
  });

  it('the kernel sources define no ABI constant outside abi.ts and use only defined ones', () => {
    const dir = new URL('../assembly/', import.meta.url);
    for (const f of readdirSync(dir).filter((f) => f.endsWith('.ts') && f !== 'abi.ts')) {
      const src = readFileSync(new URL(f, dir), 'utf8');
      expect(src, `assembly/${f} defines an ABI constant`).not.toMatch(/\bconst (?:P|I|PA|DTYPE)_[A-Z0-9_]+\s*[:=]/);
      expect(src, `assembly/${f} has a numbered params/item offset`).not.toMatch(/\b(?:params|it|P) \+ \d/);
      for (const name of src.match(ABI_NAME) ?? []) expect(kernel, `assembly/${f} uses ${name}`).toHaveProperty(name);
    }
  });

  it('the host writes every params slot by name, and no slot by number', () => {
    const params = read('src/wasm/params.ts');
    expect(params).not.toMatch(/\b(?:i32|f32)\[\d+\]/);
    for (const [name] of group('P_')) {
      if (name === 'P_COUNTER') continue; // starts at 0 with the rest of the block
      expect(params, `params.ts writes ${name}`).toMatch(new RegExp(`\\b(?:i32|f32)\\[${name}\\] =`));
    }
    const items = read('src/wasm/items.ts');
    for (const [name] of group('I_'))
      expect(items, `items.ts writes ${name}`).toMatch(new RegExp(`\\[o \\+ ${name}\\] =`));
  });

  it('the built kernel runs one item from a params block written by these names', async () => {
    const bytes = readFileSync(new URL('../build/wasm/flashattn.wasm', import.meta.url));
    const memory = new WebAssembly.Memory({ initial: 16, maximum: 65536, shared: true });
    const { instance } = await WebAssembly.instantiate(bytes, { env: { memory } });
    const k = instance.exports as unknown as {
      run(params: number, thread: number): void;
      heapBase(): number;
      slotRows(): number;
      scratchBytes(D: number, Dv: number): number;
    };
    expect(k.slotRows()).toBe(host.SLOT_ROWS);

    // one query row, three keys, one head, D = Dv = 4, float32, no mask
    const D = 4,
      Lk = 3,
      scale = 0.5;
    const q = [0.3, -1.2, 0.8, 0.1];
    const keys = [
      [1, 0.5, -0.3, 2],
      [-0.7, 0.2, 0.9, -1.1],
      [0.4, -0.6, 0.1, 0.3],
    ];
    const vals = [
      [1, 2, 3, 4],
      [-1, 0.5, 0, 2],
      [0.25, -3, 1, 1],
    ];
    let at = Math.ceil(k.heapBase() / 64) * 64;
    const take = (bytes: number) => {
      const o = at;
      at += Math.ceil(bytes / 64) * 64;
      return o;
    };
    const params = take(host.PARAMS_INTS * 4),
      item = take(host.ITEM_INTS * 4);
    const qAt = take(D * 4),
      kAt = take(Lk * D * 4),
      vAt = take(Lk * D * 4),
      outAt = take(D * 4),
      lseAt = take(4);
    const scratch = take(k.scratchBytes(D, D) >>> 0);
    const buf = memory.buffer;
    const i32 = new Int32Array(buf, params, host.PARAMS_INTS),
      f32 = new Float32Array(buf, params, host.PARAMS_INTS);
    i32[host.P_COUNTER] = 0;
    i32[host.P_NITEMS] = 1;
    i32[host.P_ITEMS] = item;
    i32[host.P_Q] = qAt;
    i32[host.P_K] = kAt;
    i32[host.P_V] = vAt;
    i32[host.P_OUT] = outAt;
    i32[host.P_LSE] = lseAt;
    i32[host.P_ALIBI] = 0;
    i32[host.P_H] = 1;
    i32[host.P_HK] = 1;
    i32[host.P_D] = D;
    i32[host.P_DV] = D;
    i32[host.P_DTYPE] = host.DTYPE_F32;
    f32[host.P_QMUL] = scale * Math.LOG2E;
    f32[host.P_CAPMUL] = 0;
    i32[host.P_WL] = -1;
    i32[host.P_WR] = -1;
    i32[host.P_LSEA] = 1;
    i32[host.P_LSEB] = 1;
    i32[host.P_SCRATCH] = scratch;
    i32[host.P_SCRATCH_STRIDE] = 0;
    i32[host.P_PARTIAL] = 0;
    i32[host.P_PARENTS] = 0;
    const it = new Int32Array(buf, item, host.ITEM_INTS);
    it[host.I_Q0] = 0;
    it[host.I_LQ] = 1;
    it[host.I_K0] = 0;
    it[host.I_LK] = Lk;
    it[host.I_H0] = 0;
    it[host.I_NG] = 1;
    it[host.I_I0] = 0;
    it[host.I_NR] = 1;
    it[host.I_KS] = 0;
    it[host.I_KE] = Lk;
    it[host.I_PARENT] = -1;
    it[host.I_SLOT] = 0;
    it[host.I_NK] = 1;
    new Float32Array(buf, qAt, D).set(q);
    new Float32Array(buf, kAt, Lk * D).set(keys.flat());
    new Float32Array(buf, vAt, Lk * D).set(vals.flat());
    k.run(params, 0);

    const s = keys.map((kr) => scale * kr.reduce((a, x, d) => a + x * q[d]!, 0));
    const m = Math.max(...s),
      w = s.map((x) => Math.exp(x - m)),
      l = w.reduce((a, b) => a + b, 0);
    const want = [0, 1, 2, 3].map((d) => w.reduce((a, x, j) => a + x * vals[j]![d]!, 0) / l);
    const out = new Float32Array(buf, outAt, D);
    for (let d = 0; d < D; d++) expect(out[d]).toBeCloseTo(want[d]!, 5);
    expect(new Float32Array(buf, lseAt, 1)[0]).toBeCloseTo(m + Math.log(l), 5);
    expect(i32[host.P_COUNTER]).toBeGreaterThanOrEqual(1); // the item was taken from the counter
  });
});
