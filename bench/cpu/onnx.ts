/**
 * A minimal ONNX ModelProto encoder, enough to build single-node attention graphs in code for the
 * peer benchmarks (no python, no downloaded .onnx files). Field numbers follow onnx/onnx.proto3.
 */

// ---------------------------------------------------------------- protobuf wire format

class Writer {
  private chunks: number[] = [];

  varint(v: number | bigint): this {
    let x = BigInt.asUintN(64, BigInt(v));
    do {
      let b = Number(x & 0x7fn);
      x >>= 7n;
      if (x !== 0n) b |= 0x80;
      this.chunks.push(b);
    } while (x !== 0n);
    return this;
  }

  tag(field: number, wire: number): this {
    return this.varint((field << 3) | wire);
  }
  int(field: number, v: number | bigint): this {
    return this.tag(field, 0).varint(v);
  }

  bytes(field: number, b: Uint8Array): this {
    this.tag(field, 2).varint(b.length);
    for (let i = 0; i < b.length; i++) this.chunks.push(b[i]!);
    return this;
  }

  string(field: number, s: string): this {
    return this.bytes(field, new TextEncoder().encode(s));
  }
  message(field: number, m: Writer): this {
    return this.bytes(field, m.finish());
  }

  float(field: number, f: number): this {
    this.tag(field, 5);
    const b = new Uint8Array(new Float32Array([f]).buffer);
    for (let i = 0; i < 4; i++) this.chunks.push(b[i]!);
    return this;
  }

  finish(): Uint8Array {
    return Uint8Array.from(this.chunks);
  }
}

// ---------------------------------------------------------------- ONNX model description

export const ElemType = { FLOAT: 1, INT32: 6, INT64: 7, BOOL: 9, FLOAT16: 10 } as const;

/** A dimension: a fixed size, or a symbolic name (dynamic). */
export type Dim = number | string;

export interface ValueInfo {
  name: string;
  elemType: number;
  dims: readonly Dim[];
}

export type AttrValue = number | string | { float: number } | { ints: readonly number[] };

export interface NodeSpec {
  opType: string;
  domain?: string;
  inputs: readonly string[];
  outputs: readonly string[];
  attrs?: Readonly<Record<string, AttrValue>>;
}

export interface Initializer {
  name: string;
  elemType: number;
  dims: readonly number[];
  raw: Uint8Array;
}

export interface GraphSpec {
  nodes: readonly NodeSpec[];
  inputs: readonly ValueInfo[];
  outputs: readonly ValueInfo[];
  initializers?: readonly Initializer[];
  /** opset per domain; '' is ai.onnx. */
  opsets: Readonly<Record<string, number>>;
  irVersion?: number;
}

function valueInfo(v: ValueInfo): Writer {
  const shape = new Writer();
  for (const d of v.dims) {
    const dim = new Writer();
    if (typeof d === 'number') dim.int(1, d);
    else dim.string(2, d);
    shape.message(1, dim);
  }
  const tensorType = new Writer().int(1, v.elemType).message(2, shape);
  const type = new Writer().message(1, tensorType);
  return new Writer().string(1, v.name).message(2, type);
}

function attribute(name: string, v: AttrValue): Writer {
  const a = new Writer().string(1, name);
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw new TypeError(`attribute ${name}: use { float } for non-integers`);
    return a.int(3, v).int(20, 2); // INT
  }
  if (typeof v === 'string') return a.string(4, v).int(20, 3); // STRING
  if ('float' in v) return a.float(2, v.float).int(20, 1); // FLOAT
  for (const x of v.ints) a.int(8, x);
  return a.int(20, 7); // INTS
}

function node(n: NodeSpec, i: number): Writer {
  const w = new Writer();
  for (const x of n.inputs) w.string(1, x);
  for (const x of n.outputs) w.string(2, x);
  w.string(3, `${n.opType}_${i}`).string(4, n.opType);
  for (const [k, v] of Object.entries(n.attrs ?? {})) w.message(5, attribute(k, v));
  if (n.domain) w.string(7, n.domain);
  return w;
}

function initializer(t: Initializer): Writer {
  const w = new Writer();
  for (const d of t.dims) w.int(1, d);
  return w.int(2, t.elemType).string(8, t.name).bytes(9, t.raw);
}

/** Encodes a one-graph ModelProto. */
export function encodeModel(g: GraphSpec): Uint8Array {
  const graph = new Writer();
  for (const [i, n] of g.nodes.entries()) graph.message(1, node(n, i));
  graph.string(2, 'flashattn_bench');
  for (const t of g.initializers ?? []) graph.message(5, initializer(t));
  for (const v of g.inputs) graph.message(11, valueInfo(v));
  for (const v of g.outputs) graph.message(12, valueInfo(v));
  const model = new Writer().int(1, g.irVersion ?? 10).string(2, 'flashattn-bench');
  for (const [domain, version] of Object.entries(g.opsets)) {
    const o = new Writer();
    if (domain) o.string(1, domain);
    model.message(8, o.int(2, version));
  }
  return model.message(7, graph).finish();
}
