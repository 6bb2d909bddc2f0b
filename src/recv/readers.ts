/** Readers shared by every receive-stream kind (plain and chunk streams). */
import { TcpReaderInfoView, UdpReaderInfoView } from "../../ffi/abi.gen.ts";
import { lib } from "../../ffi/mod.ts";
import { endpointRecord } from "../endpoint.ts";
import { checkInteger, checkOptions } from "../errors.ts";
import { ownerOf } from "../send/buffer_owners.ts";
import type { PcapFileReaderOptions, TcpReaderInfo, TcpReaderOptions, UdpReaderInfo, UdpReaderOptions } from "./reader_options.ts";

export type { PcapFileReaderOptions, TcpReaderInfo, TcpReaderOptions, UdpReaderInfo, UdpReaderOptions } from "./reader_options.ts";

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
    lib.recvStreamAddNativeBuffer(
      handle,
      owner.nativeHandle,
      off % 2 ** 32,
      Math.floor(off / 2 ** 32),
      len % 2 ** 32,
      Math.floor(len / 2 ** 32),
      "addBufferReader",
    );
    return;
  }
  lib.recvStreamAddBuffer(handle, bytes, bytes.byteLength, "addBufferReader");
}

/**
 * Maps the file at `path` (concatenated packets, as `send.BytesStream` writes
 * them) and feeds it to a stream, which stops at the end of the file. The
 * mapping belongs to the native reader, never to JS.
 */
export function addFileReaderTo(handle: number, path: string): void {
  if (typeof path !== "string" || path.length === 0) {
    throw new TypeError(`addFileReader: path must be a non-empty string, not ${typeof path === "string" ? '""' : typeof path}`);
  }
  const bytes = new TextEncoder().encode(path);
  lib.recvStreamAddFile(handle, bytes, bytes.byteLength, `addFileReader(${path})`);
}

/**
 * Maps the pcap capture at `path` and feeds its UDP datagrams, one packet
 * each, to a stream, which stops at the end of the file.
 */
export function addPcapFileReaderTo(handle: number, path: string, options?: PcapFileReaderOptions): void {
  if (typeof path !== "string" || path.length === 0) {
    throw new TypeError(`addUdpPcapFileReader: path must be a non-empty string, not ${typeof path === "string" ? '""' : typeof path}`);
  }
  if (typeof options === "string") {
    throw new TypeError(
      "addUdpPcapFileReader: libpcap filter expressions are not supported; pass { port } to keep one destination port",
    );
  }
  checkOptions("options", options, "PcapFileReaderOptions ({ port })");
  const port = options?.port ?? 0;
  checkInteger("port", port, 0, 65535);
  const bytes = new TextEncoder().encode(path);
  lib.recvStreamAddCapture(handle, bytes, bytes.byteLength, port, `addUdpPcapFileReader(${path})`);
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
  const endpoint = endpointRecord(options.bindHostname, port, "addUdpReader bindHostname");
  const iface = endpointRecord(options.interfaceAddress, 0, "addUdpReader interfaceAddress");
  const info = new UdpReaderInfoView();
  lib.recvStreamAddUdpReader(
    handle,
    endpoint,
    iface,
    options.interfaceAddress === undefined ? options.interfaceIndex ?? 0 : 0,
    options.maxSize ?? 0,
    options.bufferSize ?? 0,
    info.bytes,
    "addUdpReader",
  );
  return { port: info.port, bufferSize: info.buffer_size, gro: info.gro !== 0, bufferForced: info.buffer_size_forced !== 0 };
}

/** spead2's tcp_reader::default_buffer_size. */
const TCP_BUFFER_SIZE_DEFAULT = 208 * 1024;

/** `addTcpReader(port, options)` on a stream handle. */
export function addTcpReaderTo(handle: number, port: number, options?: TcpReaderOptions): TcpReaderInfo {
  checkInteger("port", port, 0, 65535);
  checkOptions("options", options, "TcpReaderOptions ({ bindHostname, maxSize, bufferSize })");
  const o = options ?? {};
  if (o.maxSize !== undefined) checkInteger("maxSize", o.maxSize, 8, 64 * 2 ** 20);
  if (o.bufferSize !== undefined) checkInteger("bufferSize", o.bufferSize, 0, 2 ** 30);
  const endpoint = endpointRecord(o.bindHostname, port, "addTcpReader bindHostname");
  const info = new TcpReaderInfoView();
  lib.recvStreamAddTcpReader(handle, endpoint, o.maxSize ?? 0, o.bufferSize ?? TCP_BUFFER_SIZE_DEFAULT, info.bytes, `addTcpReader(${port})`);
  return { port: info.port, bufferSize: info.buffer_size };
}
