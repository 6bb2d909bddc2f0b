/** Which NativeBuffer a view belongs to: sends pin it while in flight, buffer readers read it in place. */
import type { NativeBuffer } from "./buffer.ts";

/** Maps a buffer's ArrayBuffer to its owner (set and cleared by NativeBuffer). */
export const owners: WeakMap<ArrayBufferLike, NativeBuffer> = new WeakMap();

/** The NativeBuffer a view belongs to, if any. */
export function ownerOf(view: Uint8Array): NativeBuffer | undefined {
  return owners.get(view.buffer);
}
