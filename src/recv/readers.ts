/** Readers shared by every receive-stream kind (plain and chunk streams). */
import { native } from "../../ffi/mod.ts";
import { check, checkInteger, checkOptions } from "../errors.ts";
import { ownerOf } from "../send/buffer.ts";

/** Options of {@link Stream.addUdpReader}; defaults are spead2's. */
export interface UdpReaderOptions {
  /** Local address to bind (IPv4/IPv6 literal); default all IPv4 interfaces. Multicast groups are joined. */
  bindHostname?: string;
  /** Largest datagram accepted (default 9200); longer ones are dropped and counted. */
  maxSize?: number;
  /** Socket receive buffer to ask for (default 8 MiB; the kernel may cap it at rmem_max). */
  bufferSize?: number;
  /** IPv4 interface address for multicast (or the bind address with 0.0.0.0). */
  interfaceAddress?: string;
  /** IPv6 interface index for multicast. */
  interfaceIndex?: number;
}

/** What the UDP reader got from the kernel. */
export interface UdpReaderInfo {
  /** The bound port (useful with port 0). */
  readonly port: number;
  /** SO_RCVBUF as the kernel reports it. */
  readonly bufferSize: number;
  /** Whether UDP GRO is enabled on the socket. */
  readonly gro: boolean;
  /**
   * Whether the buffer went past `net.core.rmem_max` (SO_RCVBUFFORCE, allowed
   * with CAP_NET_ADMIN). Without that right the kernel caps it silently;
   * compare `bufferSize` (which Linux reports doubled) with what was asked.
   */
  readonly bufferForced: boolean;
}

/**
 * Feeds `bytes` (concatenated packets) to a stream; it stops at the end. A
 * view of a send.NativeBuffer is read in place (the reader holds a native
 * reference on it); other memory is copied first.
 */
export function addBufferReaderTo(handle: number, bytes: Uint8Array): void {
  const owner = ownerOf(bytes);
  if (owner) {
    const off = bytes.byteOffset;
    const len = bytes.byteLength;
    check(
      native.symbols.spead_recv_stream_add_native_buffer(
        handle,
        owner.nativeHandle,
        off % 2 ** 32,
        Math.floor(off / 2 ** 32),
        len % 2 ** 32,
        Math.floor(len / 2 ** 32),
      ),
      "addBufferReader",
    );
    return;
  }
  check(native.symbols.spead_recv_stream_add_buffer(handle, bytes, bytes.byteLength), "addBufferReader");
}

/** `addUdpReader(port, options)` or `addUdpReader(group, port, options)` on a stream handle. */
export function addUdpReaderTo(
  handle: number,
  a: number | string,
  b?: number | UdpReaderOptions,
  c?: UdpReaderOptions,
): UdpReaderInfo {
  const [port, options] = typeof a === "string"
    ? [b as number, { ...(c ?? {}), bindHostname: a }]
    : [a, (b as UdpReaderOptions | undefined) ?? {}];
  checkInteger("port", port, 0, 65535);
  checkOptions("options", options, "UdpReaderOptions ({ bindHostname, maxSize, bufferSize, ... })");
  if (options.maxSize !== undefined) checkInteger("maxSize", options.maxSize, 1, 0x7fff_ffff);
  if (options.bufferSize !== undefined) checkInteger("bufferSize", options.bufferSize, 0, 0x7fff_ffff);
  if (options.interfaceIndex !== undefined) checkInteger("interfaceIndex", options.interfaceIndex, 0, 0xffff_ffff);
  const enc = new TextEncoder();
  const addr = enc.encode(options.bindHostname ?? "");
  const iface = enc.encode(options.interfaceAddress ?? (options.interfaceIndex?.toString() ?? ""));
  const info = new Uint32Array(3);
  check(
    native.symbols.spead_recv_stream_add_udp_reader(
      handle,
      addr,
      addr.byteLength,
      port,
      options.maxSize ?? 0,
      options.bufferSize ?? 0,
      iface,
      iface.byteLength,
      info,
    ),
    "addUdpReader",
  );
  return { port: info[0], bufferSize: info[1], gro: (info[2] & 1) !== 0, bufferForced: (info[2] & 2) !== 0 };
}
