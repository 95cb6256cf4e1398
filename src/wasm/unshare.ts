/**
 * The kernel is built for threads, so it imports a shared memory. One thread needs none, and
 * outside cross-origin isolation some browsers refuse to create one: this flips the shared bit
 * of the memory import's limits in a copy of the bytes, in place of shipping a second pair of
 * builds. Atomic instructions stay valid on an unshared memory (they act as plain accesses).
 */

const MAGIC = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
const IMPORT_SECTION = 2;
const KIND_FUNC = 0,
  KIND_TABLE = 1,
  KIND_MEMORY = 2,
  KIND_GLOBAL = 3,
  KIND_TAG = 4;
const LIMITS_HAS_MAX = 1,
  LIMITS_SHARED = 2;

/** A copy of `bytes` whose memory import is unshared (an unchanged copy when it imports no shared memory). */
export function unshareMemoryImport(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(bytes);
  if (b.length < 8 || MAGIC.some((m, i) => b[i] !== m))
    throw new TypeError('Expected the bytes of a WebAssembly module (version 1) for the kernel');
  let pos = 8;
  const byte = () => {
    if (pos >= b.length) throw new RangeError('truncated WebAssembly module');
    return b[pos++]!;
  };
  const leb = () => {
    let v = 0,
      shift = 0,
      x: number;
    do {
      x = byte();
      v += (x & 0x7f) * 2 ** shift;
      shift += 7;
    } while (x & 0x80);
    return v;
  };
  const limits = () => {
    const flags = byte();
    leb();
    if (flags & LIMITS_HAS_MAX) leb();
  };
  while (pos < b.length) {
    const id = byte(),
      size = leb(),
      end = pos + size;
    if (id !== IMPORT_SECTION) {
      pos = end;
      continue;
    }
    for (let n = leb(); n > 0; n--) {
      for (let name = 0; name < 2; name++) {
        const len = leb();
        pos += len;
      } // module and field names
      switch (byte()) {
        case KIND_FUNC:
          leb();
          break;
        case KIND_TABLE:
          byte();
          limits();
          break;
        case KIND_MEMORY: {
          const at = pos;
          if (b[at]! & LIMITS_SHARED) b[at] = b[at]! & ~LIMITS_SHARED;
          limits();
          break;
        }
        case KIND_GLOBAL:
          byte();
          byte();
          break;
        case KIND_TAG:
          byte();
          leb();
          break;
        default:
          throw new RangeError('unknown import kind in the WebAssembly module');
      }
    }
    return b;
  }
  return b;
}

/**
 * `(func (result v128) (f32x4.relaxed_madd (v128.const 0) (v128.const 0) (v128.const 0)))`: validates
 * only where relaxed SIMD is on, so the browser fetches just the build it will run (as
 * onnxruntime-web's wasm-factory probes features with tiny modules).
 */
const RELAXED_PROBE = Uint8Array.of(
  ...MAGIC,
  0x01,
  0x05,
  0x01,
  0x60,
  0x00,
  0x01,
  0x7b, // type section: () -> v128
  0x03,
  0x02,
  0x01,
  0x00, // function section: one function of type 0
  0x0a,
  0x3d,
  0x01,
  0x3b,
  0x00, // code section: one body of 59 bytes, no locals
  ...[0, 1, 2].flatMap(() => [0xfd, 0x0c, ...new Array<number>(16).fill(0)]), // v128.const 0, three times
  0xfd,
  0x85,
  0x02, // f32x4.relaxed_madd (0xfd 261)
  0x0b, // end
);

export function relaxedSimdSupported(): boolean {
  try {
    return WebAssembly.validate(RELAXED_PROBE);
  } catch {
    return false;
  }
}
