/**
 * TCP send stream (spead2's `send.TcpStream`): connects to one endpoint and
 * writes each heap's packets back to back on the connection, from the same
 * native I/O thread, queue and completions as {@link UdpStream}.
 */
import { lib } from "../../ffi/mod.ts";
import { endpointRecord } from "../endpoint.ts";
import { checkInstance, checkInteger, checkOptions, SpeadError } from "../errors.ts";
import { ThreadPool } from "../thread_pool.ts";
import { AdoptedSendStream, sendConfigRecord } from "./adopted.ts";
import { StreamConfig } from "./stream_config.ts";
import { UdpStream } from "./udp_stream.ts";

/** Options of {@link TcpStream} beyond the stream config; defaults are spead2's. */
export interface TcpStreamOptions {
  /** Socket send buffer (SO_SNDBUF) in bytes; default 208 KiB (spead2's); 0 leaves the OS default. */
  bufferSize?: number;
  /** Local address to connect from (an IP literal). */
  interfaceAddress?: string;
  /** Pins the stream's I/O thread (spead2 passes a `ThreadPool` first; here it only carries the affinity). */
  threadPool?: ThreadPool;
}

/** spead2's `send::tcp_stream::default_buffer_size`. */
const TCP_BUFFER_SIZE_DEFAULT = 208 * 1024;

type Endpoint = readonly [string, number];

/**
 * Sends heaps over one TCP connection (spead2's `send.TcpStream`). The
 * constructor connects (blocking; a refused or failed connection throws
 * `SpeadError` `system_error` with the errno, e.g. `ECONNREFUSED`); then
 * `asyncSendHeap`, `sendHeap`, `asyncSendHeaps`, `flush` and the statistics work
 * as on {@link UdpStream}, whose methods it shares, with one substream. TCP
 * delivers every packet: a full socket makes the sender wait, and the
 * receiver must accept packets of `config.maxPacketSize` (spead2's TCP reader
 * takes 65536 by default). A connection the peer closed makes the heaps sent
 * after it fail with `system_error` (`EPIPE` or `ECONNRESET`).
 */
export class TcpStream extends UdpStream {
  /** Connects to `endpoint` (`[host, port]`, an IP literal; a one-element list as spead2's is accepted). */
  constructor(endpoint: Endpoint | ReadonlyArray<Endpoint>, config?: StreamConfig, options?: TcpStreamOptions);
  /** spead2's positional form: `send.TcpStream(thread_pool, endpoints, config)`. */
  constructor(threadPool: ThreadPool, endpoint: Endpoint | ReadonlyArray<Endpoint>, config?: StreamConfig, options?: TcpStreamOptions);
  constructor(
    a: ThreadPool | Endpoint | ReadonlyArray<Endpoint>,
    b?: Endpoint | ReadonlyArray<Endpoint> | StreamConfig,
    c?: StreamConfig | TcpStreamOptions,
    d?: TcpStreamOptions,
  ) {
    super(openTcp(a, b, c, d) as never);
  }
}

function openTcp(
  a: ThreadPool | Endpoint | ReadonlyArray<Endpoint>,
  b?: Endpoint | ReadonlyArray<Endpoint> | StreamConfig,
  c?: StreamConfig | TcpStreamOptions,
  d?: TcpStreamOptions,
): AdoptedSendStream {
  const spead2Form = a instanceof ThreadPool;
  const endpoints = (spead2Form ? b : a) as Endpoint | ReadonlyArray<Endpoint>;
  const config = (spead2Form ? c : b) ?? new StreamConfig();
  const options: TcpStreamOptions = spead2Form ? { ...(d ?? {}), threadPool: a } : (c as TcpStreamOptions) ?? {};
  const form = "send.TcpStream([host, port], config?, options?) or send.TcpStream(threadPool, [[host, port]], config?)";
  if (!Array.isArray(endpoints)) throw new SpeadError("invalid_argument", `endpoint must be a [host, port] pair (${form})`);
  const list = (typeof endpoints[0] === "string" ? [endpoints] : endpoints) as ReadonlyArray<Endpoint>;
  if (list.length !== 1) {
    throw new SpeadError("invalid_argument", `TCP takes exactly one endpoint, not ${list.length} (${form})`);
  }
  const [host, port] = list[0];
  checkInteger("port", port, 1, 65535);
  const cfg = checkInstance("config", config, StreamConfig, `a send.StreamConfig (${form})`);
  checkOptions("options", options, `TcpStreamOptions ({ bufferSize, interfaceAddress, threadPool }) (${form})`);
  if (options.bufferSize !== undefined) checkInteger("bufferSize", options.bufferSize, 0, 0x7fff_ffff);
  if (options.threadPool !== undefined) checkInstance("threadPool", options.threadPool, ThreadPool, "a ThreadPool");
  const ep = endpointRecord(host, port, "send.TcpStream endpoint");
  const iface = endpointRecord(options.interfaceAddress, 0, "send.TcpStream interfaceAddress");
  const record = sendConfigRecord(cfg, {
    bufferSize: options.bufferSize ?? TCP_BUFFER_SIZE_DEFAULT,
    threadPool: options.threadPool,
  });
  const handle = lib.tcpSendStreamCreate(ep, iface, record.view, `send.TcpStream(${host}, ${port})`);
  return new AdoptedSendStream(handle, cfg, 1, "send.TcpStream");
}
