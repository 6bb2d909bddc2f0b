/** bun:ffi backend. Only ffi/mod.ts imports this file, and only under Bun. */
import { dlopen, FFIType, JSCallback, ptr, toArrayBuffer } from "bun:ffi";
import type { Backend, NativeFunction, NativeType, Symbols } from "./symbols.ts";
import { symbolDefs } from "./symbols.ts";

function bunType(t: NativeType): FFIType {
  switch (t) {
    case "u32":
      return FFIType.u32;
    case "i32":
      return FFIType.i32;
    case "f64":
      return FFIType.f64;
    case "buffer":
      return FFIType.ptr;
    case "function":
      // Passed as a raw pointer (JSCallback.ptr) so that null can disable a callback.
      return FFIType.ptr;
    case "void":
      return FFIType.void;
  }
}

export function open(path: string): Backend {
  const table: Record<string, { args: FFIType[]; returns: FFIType }> = {};
  for (const [name, def] of Object.entries(symbolDefs)) {
    table[name] = { args: def.args.map(bunType), returns: bunType(def.returns) };
  }
  const lib = dlopen(path, table);
  const symbols = lib.symbols as unknown as Symbols;
  return {
    runtime: "bun",
    path,
    symbols,
    asyncSymbols: undefined,
    addressOf(view: ArrayBufferView): bigint {
      return BigInt(ptr(view as Uint8Array));
    },
    arrayBufferAt(address: bigint, length: number): ArrayBuffer {
      if (length === 0) return new ArrayBuffer(0);
      return toArrayBuffer(Number(address) as never, 0, length);
    },
    createDoorbell(fn: (handle: number) => void) {
      const cb = new JSCallback((handle: number) => fn(handle), {
        args: [FFIType.u32],
        returns: FFIType.void,
        threadsafe: true,
      });
      return { pointer: cb.ptr as unknown as NativeFunction, close: () => cb.close() };
    },
    close() {
      lib.close();
    },
  };
}
