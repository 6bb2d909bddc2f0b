/**
 * Internal to send streams (not exported by mod.ts): the SendStreamConfig
 * record, and a native send stream opened by a subclass of `UdpStream`
 * (`send.TcpStream`) for `UdpStream`'s constructor to take over.
 */
import { SendStreamConfigView } from "../../ffi/abi.gen.ts";
import type { ThreadPool } from "../thread_pool.ts";
import type { StreamConfig } from "./stream_config.ts";

/** A send-stream handle already opened. */
export class AdoptedSendStream {
  constructor(
    readonly handle: number,
    readonly config: StreamConfig,
    readonly substreams: number,
    /** The class name errors and leak warnings use ("send.TcpStream"). */
    readonly what: string,
  ) {}
}

/** Socket options of a send stream (checked by the caller). */
export interface SocketOptions {
  bufferSize: number;
  ttl?: number;
  interfaceIndex?: number;
  disableGso?: boolean;
  threadPool?: ThreadPool;
}

/** The SendStreamConfig record of `config` and `options`. */
export function sendConfigRecord(config: StreamConfig, options: SocketOptions): SendStreamConfigView {
  const record = new SendStreamConfigView();
  record.packet_size_max = config.maxPacketSize;
  record.rate = config.rate;
  record.burst_size = config.burstSize;
  record.heaps_max = config.maxHeaps;
  record.burst_rate_ratio = config.burstRateRatio;
  record.buffer_size = options.bufferSize;
  record.ttl = options.ttl ?? -1;
  record.interface_index = options.interfaceIndex ?? 0;
  record.flags = options.disableGso ? 1 : 0;
  record.io_core = options.threadPool?.nextCore() ?? -1;
  return record;
}
