/**
 * IP endpoints as the C ABI takes them: an `Endpoint` record (ffi/abi.gen.ts,
 * zig/abi/records.zig) written from an IP literal. Hosts are IPv4 or IPv6
 * literals, as before (no name resolution); anything else is
 * `invalid_argument`. Used by send.UdpStream and the UDP readers of receive
 * and chunk streams.
 */
import { EndpointLayout, EndpointView } from "../ffi/abi.gen.ts";
import { SpeadError } from "./errors.ts";

/** `Endpoint.family` values (zig/abi/records.zig). */
const FAMILY_NONE = 0;
const FAMILY_IP4 = 4;
const FAMILY_IP6 = 6;

/** The 4 bytes of a dotted IPv4 literal, or null. */
function parseIp4(text: string): Uint8Array | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  const bytes = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    if (!/^[0-9]{1,3}$/.test(parts[i])) return null;
    const v = Number(parts[i]);
    if (v > 255) return null;
    bytes[i] = v;
  }
  return bytes;
}

/** The 16 bytes and the scope ("%2") of an IPv6 literal, or null. */
function parseIp6(text: string): { bytes: Uint8Array; scope: number } | null {
  let scope = 0;
  const percent = text.indexOf("%");
  if (percent >= 0) {
    const id = text.slice(percent + 1);
    if (!/^[0-9]{1,10}$/.test(id) || Number(id) > 0xffff_ffff) return null;
    scope = Number(id);
    text = text.slice(0, percent);
  }
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const groups = (half: string): number[] | null => {
    if (half === "") return [];
    const out: number[] = [];
    const parts = half.split(":");
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i];
      if (i === parts.length - 1 && p.includes(".")) {
        const v4 = parseIp4(p);
        if (!v4) return null;
        out.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(p)) {
        out.push(parseInt(p, 16));
      } else {
        return null;
      }
    }
    return out;
  };
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  if (!head || !tail) return null;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  const all = [...head, ...new Array<number>(missing).fill(0), ...tail];
  const bytes = new Uint8Array(16);
  all.forEach((g, i) => {
    bytes[2 * i] = g >> 8;
    bytes[2 * i + 1] = g & 0xff;
  });
  return { bytes, scope };
}

/**
 * Writes `host`:`port` into the record at `offset` of `buffer`. `host` is an
 * IP literal; `what` names the argument in the error.
 */
export function writeEndpoint(buffer: ArrayBuffer, offset: number, host: string, port: number, what: string): void {
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new SpeadError("invalid_argument", `${what}: port ${String(port)} is not 0..65535`);
  }
  const record = new EndpointView(buffer, offset);
  record.port = port;
  if (typeof host !== "string") throw new SpeadError("invalid_argument", `${what}: host ${String(host)} is not a string`);
  const v4 = parseIp4(host);
  if (v4) {
    record.family = FAMILY_IP4;
    record.address = v4;
    return;
  }
  const v6 = parseIp6(host);
  if (!v6) throw new SpeadError("invalid_argument", `${what}: ${JSON.stringify(host)} is not an IPv4 or IPv6 address`);
  record.family = FAMILY_IP6;
  record.address = v6.bytes;
  record.scope_id = v6.scope;
}

/** One Endpoint record; `host` undefined or "" gives family 0 (none / any address). */
export function endpointRecord(host: string | undefined, port: number, what: string): Uint8Array {
  const buffer = new ArrayBuffer(EndpointLayout.size);
  if (host === undefined || host === "") {
    const record = new EndpointView(buffer);
    record.family = FAMILY_NONE;
    record.port = port;
    return record.bytes;
  }
  writeEndpoint(buffer, 0, host, port, what);
  return new Uint8Array(buffer);
}

/** `endpoints.length` Endpoint records, one after the other. */
export function endpointRecords(endpoints: ReadonlyArray<readonly [string, number]>, what: string): Uint8Array {
  const buffer = new ArrayBuffer(EndpointLayout.size * endpoints.length);
  endpoints.forEach(([host, port], i) => writeEndpoint(buffer, i * EndpointLayout.size, host, port, what));
  return new Uint8Array(buffer);
}
